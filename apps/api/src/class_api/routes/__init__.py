"""HTTP routes, one module per resource. Handlers are a few lines: DTO in → use case → DTO out."""
