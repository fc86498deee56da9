"""``manage.py`` commands: each module here is one command."""
