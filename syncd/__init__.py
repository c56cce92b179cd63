"""syncd: keeps CloudBlue Connect tier accounts and their change requests in sync with a CRM."""

__version__ = "0.1.0"
