"""Run the web app on port 8083 with Flask's development server.

In production serve it with gunicorn instead:

    gunicorn -b 0.0.0.0:8083 'web:create_app()'
"""

from web import create_app

if __name__ == "__main__":
    create_app().run(host="0.0.0.0", port=8083)
