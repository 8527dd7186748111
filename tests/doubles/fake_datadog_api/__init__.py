"""Stand-in for the Datadog HTTP API in tests (Datadog's servers can't be reached from here).

server.py runs it (CLI and HTTP), app.py keeps its state and answers, bodies.py checks request
bodies with datadog-api-client's models the way Datadog answers 400.
"""
