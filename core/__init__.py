"""The kernel: what every capability, gateway and the assembly share."""
