"""QBO webhooks for the pull direction (R29, R44): receiver, parser and inbox. No Dagster.

* :mod:`~qbo_pipelines.webhooks.verify`: the ``intuit-signature`` HMAC check.
* :mod:`~qbo_pipelines.webhooks.events`: legacy and CloudEvents bodies -> ``WebhookEvent``.
* :mod:`~qbo_pipelines.webhooks.inbox`: ``sync.webhook_inbox``: ``store``, ``pending``,
  ``claim``, ``done``, ``prune`` (what the pull run codes against).
* :mod:`~qbo_pipelines.webhooks.receiver`: the Starlette app (``create_app``).
* :mod:`~qbo_pipelines.webhooks.cli`: ``qbo-pipelines webhooks serve``.
"""

from qbo_pipelines.webhooks.events import MalformedPayload, WebhookEvent

__all__ = ["MalformedPayload", "WebhookEvent"]
