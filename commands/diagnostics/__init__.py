"""Read-only diagnostics for on-call: `/forge status|pods|events|logs SERVICE ENV`."""
