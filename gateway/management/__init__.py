"""Management commands of the gateway app (``manage.py runworker``, ``runserver``)."""
