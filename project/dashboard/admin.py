"""The admin, branded as the gateway's; its "View site" link leads to the dashboard."""

from django.contrib import admin

admin.site.site_header = "Gateway administration"
admin.site.site_title = "Gateway admin"
admin.site.site_url = "/"
