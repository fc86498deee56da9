"""The two models the suite's tests import."""

from django.db import models


class TestModel(models.Model):
    __test__ = False  # not a test class

    name = models.CharField(max_length=255)


class TestModelWithCustomPK(models.Model):
    __test__ = False

    name = models.CharField(max_length=255, primary_key=True)
    description = models.CharField(max_length=255, null=True, blank=True)
