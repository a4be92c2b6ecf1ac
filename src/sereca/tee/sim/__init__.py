"""The simulated TEE: a software key stands in for the CPU (protects nothing against the host)."""
