"""Operator notifications (R31): sent to the configured channels, email and Slack-style webhooks.

Plain library (no Dagster). The problems themselves are rows of ``sync.notifications``, opened
and resolved where they happen: records held back or refused by QBO
(:mod:`qbo_pipelines.quality.quarantine`, called by the push), failed runs and companies that
need reconnecting (:mod:`qbo_pipelines.notify.sources`). This package sends them:

* :mod:`~qbo_pipelines.notify.channels`: where to (``sync.notification_channels``; secrets
  encrypted with the token store's key);
* :mod:`~qbo_pipelines.notify.messages`: what a message says (one record, or a digest);
* :mod:`~qbo_pipelines.notify.senders`: SMTP and the JSON webhook (signed when a secret is set);
* :mod:`~qbo_pipelines.notify.delivery`: :func:`deliver_pending`, once per notification and
  channel, resolutions announced once, failures retried with backoff.

The Dagster layer (``qbo_pipelines/defs/notify.py``) opens and resolves run failures from run
status sensors and calls :func:`deliver_pending` every 30 s; ``qbo-pipelines notify`` manages
channels and sends by hand.
"""

from qbo_pipelines.notify.channels import (
    Channel,
    ChannelError,
    add_email_channel,
    add_webhook_channel,
    get_channel,
    list_channels,
    remove_channel,
    set_enabled,
)
from qbo_pipelines.notify.delivery import (
    ChannelOutcome,
    DeliveryReport,
    deliver_pending,
    send_test,
)
from qbo_pipelines.notify.messages import Item, Message, render
from qbo_pipelines.notify.sources import (
    RECONNECT_TITLE,
    RUN_FAILED_TITLE,
    notify_needs_reconnect,
    notify_run_failed,
    resolve_needs_reconnect,
    resolve_run_failed,
)

__all__ = [
    "RECONNECT_TITLE",
    "RUN_FAILED_TITLE",
    "Channel",
    "ChannelError",
    "ChannelOutcome",
    "DeliveryReport",
    "Item",
    "Message",
    "add_email_channel",
    "add_webhook_channel",
    "deliver_pending",
    "get_channel",
    "list_channels",
    "notify_needs_reconnect",
    "notify_run_failed",
    "remove_channel",
    "render",
    "resolve_needs_reconnect",
    "resolve_run_failed",
    "send_test",
    "set_enabled",
]
