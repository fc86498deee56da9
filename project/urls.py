"""The site: the dashboard at ``/``, login and logout, ``/metrics``, the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from project.dashboard import views

urlpatterns = [
    path("", include("project.dashboard.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="dashboard/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
