"""Provider adapters: one module per wire format, pure data in and data out."""
