"""Cost and budgets: `/forge cost`, `/forge budget` and the daily budget alerts."""
