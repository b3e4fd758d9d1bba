"""What changed: one timeline of deploys, rollbacks, freezes, off-hours, environments and SLO
alert episodes, for `/forge changes`, incident cards and alert enrichment."""
