"""casereach: cases as messaging contacts, with alerts, routing and a message log."""

__version__ = "0.1.0"
