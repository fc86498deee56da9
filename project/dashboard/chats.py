"""The Telegram page: link a chat to your account with a one-time code, see and end links.

A code is shown once, works once and expires after ``LINK_CODE_TTL``; the bot's
``/link <code>`` redeems it (``project.chatbot``). Staff see every user's linked
chats; others their own.
"""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from gateway.telegram.accounts import issue_link_code
from gateway.telegram.models import TelegramAccount
from project.chatbot.models import Subscription
from project.dashboard.users import signed_in

LINK_CODE_TTL = datetime.timedelta(minutes=10)


@login_required
def chats(request: HttpRequest) -> HttpResponse:
    accounts = TelegramAccount.objects.select_related("user").order_by("user__username", "pk")
    if not request.user.is_staff:
        accounts = accounts.filter(user=signed_in(request))
    subscriptions = Subscription.objects.select_related("thing").order_by("thing__name")
    if not request.user.is_staff:
        subscriptions = subscriptions.filter(user=signed_in(request))
    code = request.session.pop("chatbot_link_code", None)
    context = {
        "page": "chats",
        "accounts": accounts,
        "subscriptions": subscriptions,
        "code": code,
        "ttl_minutes": int(LINK_CODE_TTL.total_seconds() // 60),
    }
    return render(request, "dashboard/chats.html", context)


@login_required
@require_POST
def new_link_code(request: HttpRequest) -> HttpResponse:
    code = issue_link_code(request.user, LINK_CODE_TTL)
    # Shown on the next page once, from the server-side session, never in a URL.
    request.session["chatbot_link_code"] = {
        "code": code,
        "expires": (timezone.now() + LINK_CODE_TTL).isoformat(),
    }
    return redirect("dashboard:chats")


@login_required
@require_POST
def unlink(request: HttpRequest, pk: int) -> HttpResponse:
    accounts = TelegramAccount.objects.all()
    if not request.user.is_staff:
        accounts = accounts.filter(user=signed_in(request))
    account = accounts.filter(pk=pk).first()
    if account is None:
        raise Http404("no such linked chat")
    Subscription.objects.filter(user=account.user, chat_id=account.telegram_id).delete()
    account.delete()
    messages.success(request, f"Unlinked {account}.")
    return redirect("dashboard:chats")
