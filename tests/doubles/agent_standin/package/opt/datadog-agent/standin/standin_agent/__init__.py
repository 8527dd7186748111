"""Test stand-in for the Datadog Agent 7 (datadog-lab tests): the real package can't be reached here."""
