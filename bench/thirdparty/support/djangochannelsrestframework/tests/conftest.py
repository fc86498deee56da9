"""Settings for djangochannelsrestframework's suite, written for this harness.

The library's sdist ships its ``tests/test_*.py`` but not the settings, models
and communicator they import; these files stand in for them. They name Channels
(``channels``) like the library does, so the harness's rename applies to them
as it does to the library.
"""

import gc

import pytest
from django.conf import settings


def pytest_configure() -> None:
    settings.configure(
        INSTALLED_APPS=(
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "channels",
            "tests",
        ),
        SECRET_KEY="not-secret",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        # The observer tests use the default layer without configuring one.
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    )


@pytest.fixture(autouse=True)
def _forget_earlier_tests_observers() -> None:
    """Collect the consumer classes earlier tests defined, before each test.

    The tests define consumer classes inside test functions; each class's model
    observer stays connected to ``post_save``/``post_delete`` until the class is
    garbage collected. Instance observers name their groups after the model and
    primary key only, so a leftover observer from an earlier test sends a second
    ``update`` to the same group, which the consumer answers with 404 once the
    test has deleted the row. Whether that happens depends on when the garbage
    collector runs: on Channels 4.3.2 as on gateway, test_model_observer.py run
    alone fails that way in about half of the runs. Collecting first makes both
    deterministic.
    """
    gc.collect()
