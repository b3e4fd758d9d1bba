"""Preview environments per pull request: created on open, updated on push, removed on close."""
