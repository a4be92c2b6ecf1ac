import pytest

from sereca.service.addresses import check_address, covers, matches
from sereca.service.errors import ServiceDefinitionError


@pytest.mark.parametrize(
    "pattern,address,expected",
    [
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "x.b", True),
        ("a", "a.b", False),
    ],
)
def test_matches(pattern: str, address: str, expected: bool) -> None:
    assert matches(pattern, address) is expected


@pytest.mark.parametrize(
    "outer,inner,expected",
    [
        ("a.>", "a.*", True),
        ("a.>", "a.b.>", True),
        ("a.*", "a.>", False),
        ("a.*", "a.b", True),
        ("a.b", "a.*", False),
        ("a.>", "a", False),
        ("*.*", "a.b", True),
    ],
)
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


@pytest.mark.parametrize("bad", ["", "a..b", "a.>.b", "a b", "a.$", ">x"])
def test_bad_addresses(bad: str) -> None:
    with pytest.raises(ServiceDefinitionError):
        check_address(bad, allow_wildcards=True)


def test_wildcards_refused_where_concrete_needed() -> None:
    with pytest.raises(ServiceDefinitionError, match="wildcards"):
        check_address("a.*", allow_wildcards=False)
