"""Handler declarations: signature analysis, body validation, reply encoding.

A handler takes at most two parameters, in any order:

* the **message** — a parameter named ``msg`` or ``message``, or annotated
  with the bus's ``Message`` class: the raw bus message (address, headers,
  reply);
* the **body** — any other parameter.  If it is annotated (a pydantic model,
  ``dict``, ``list[int]``, ...), the body is validated against that type on
  arrival; a body that fails is rejected before the handler runs.

The return annotation, if any, documents the reply's schema.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from sereca.service.errors import BodyValidationError, ServiceDefinitionError

MESSAGE_PARAM_NAMES = frozenset({"msg", "message"})


def _is_message_annotation(annotation: Any) -> bool:
    return (
        isinstance(annotation, type)
        and annotation.__name__.endswith("Message")
        and annotation.__module__.startswith("sereca.bus")
    )


def type_name(annotation: Any) -> str:
    if annotation is None:
        return "any"
    return getattr(annotation, "__name__", None) or str(annotation)


def _resolved_signature(func: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(func, eval_str=True)
    except NameError as exc:
        raise ServiceDefinitionError(
            f"handler {func.__qualname__}: cannot resolve an annotation ({exc}); "
            "define the model at module level, before the handler"
        ) from None


@dataclass(frozen=True)
class TypedBody:
    """A declared body type with its pydantic adapter (or none: the body is passed as is)."""

    annotation: Any
    adapter: TypeAdapter[Any] | None

    @classmethod
    def of(cls, annotation: Any) -> TypedBody:
        if annotation is inspect.Parameter.empty or annotation is None or annotation is Any:
            return cls(None, None)
        try:
            return cls(annotation, TypeAdapter(annotation))
        except Exception as exc:  # pydantic raises several types for unsupported annotations
            raise ServiceDefinitionError(f"cannot validate bodies of type {annotation!r}: {exc}") from None

    @property
    def name(self) -> str:
        return type_name(self.annotation)

    def schema(self) -> dict[str, Any]:
        if self.adapter is None:
            return {}
        return self.adapter.json_schema(ref_template="#/components/schemas/{model}")

    def validate(self, address: str, body: Any) -> Any:
        if self.adapter is None:
            return body
        try:
            if isinstance(body, (bytes, str)) and self._wants_structure():
                # A JSON text body (e.g. from a non-Python sender) for a structured type.
                return self.adapter.validate_json(body)
            return self.adapter.validate_python(body)
        except ValidationError as exc:
            errors = [
                {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            raise BodyValidationError(address, self.name, errors) from None

    def _wants_structure(self) -> bool:
        a = self.annotation
        return isinstance(a, type) and issubclass(a, BaseModel)


@dataclass(frozen=True)
class Handler:
    """One consumer: its address, function and declared types."""

    address: str
    func: Callable[..., Awaitable[Any] | Any]
    body_param: str | None
    message_param: str | None
    body: TypedBody
    reply: TypedBody
    description: str

    @classmethod
    def analyse(cls, address: str, func: Callable[..., Any], description: str | None) -> Handler:
        if not callable(func):
            raise ServiceDefinitionError(f"consumer for {address!r} must be a function, got {func!r}")
        sig = _resolved_signature(func)
        body_param = message_param = None
        body_annotation: Any = inspect.Parameter.empty
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise ServiceDefinitionError(
                    f"handler {func.__qualname__} for {address!r}: parameter {p.name!r} must be a plain parameter"
                )
            if p.name in MESSAGE_PARAM_NAMES or _is_message_annotation(p.annotation):
                if message_param is not None:
                    raise ServiceDefinitionError(f"handler {func.__qualname__}: two message parameters")
                message_param = p.name
            elif body_param is None:
                body_param, body_annotation = p.name, p.annotation
            elif p.default is p.empty:
                raise ServiceDefinitionError(
                    f"handler {func.__qualname__} for {address!r}: unexpected parameter {p.name!r}; "
                    "a handler takes the body (annotated with its model) and/or the message (named msg)"
                )
        doc = description if description is not None else inspect.getdoc(func) or ""
        return cls(
            address=address,
            func=func,
            body_param=body_param,
            message_param=message_param,
            body=TypedBody.of(body_annotation),
            reply=TypedBody.of(sig.return_annotation),
            description=doc,
        )

    def arguments(self, body: Any, message: Any) -> dict[str, Any]:
        """Validate ``body`` and build the keyword arguments (raises :class:`BodyValidationError`)."""
        kwargs: dict[str, Any] = {}
        if self.body_param is not None:
            kwargs[self.body_param] = self.body.validate(self.address, body)
        if self.message_param is not None:
            kwargs[self.message_param] = message
        return kwargs

    async def invoke(self, kwargs: dict[str, Any]) -> Any:
        result = self.func(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def encode_body(value: Any) -> Any:
    """Turn a handler's value into something the bus can carry (msgpack types)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): encode_body(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_body(v) for v in value]
    return to_jsonable_python(value)
