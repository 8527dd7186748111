"""The WSGI entry point gunicorn serves: ``lab_app.wsgi:app``."""

from lab_app.app import create_app

app = create_app()
