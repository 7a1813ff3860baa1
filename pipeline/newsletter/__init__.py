"""The newsletter: every ``newsletter.every`` published memes, one email featuring all of them.

Three parts, so composing can change without touching delivery and the other way round:

- :mod:`.compose`: memes in, message and archive documents out (pure, no I/O);
- :mod:`.deliver`: the SMTP server or the outbox, and the edition's state in the catalog
  ('preparing', 'sending' = in doubt, 'sent') that makes delivery exactly-once;
- :mod:`.editions`: the rule (which memes, when due), special editions, status and preview.

Uploading the archive and the exit code of a run belong to the orchestrator,
:mod:`pipeline.publish`. The names below are the package's public face.
"""

from pipeline.newsletter.compose import (
    ARCHIVE_PREFIX,
    REGULAR,
    SPECIAL,
    Draft,
    alt_text,
    archive_documents,
    archive_path,
    compose,
    draft,
    pick_rendition,
    regular_subject,
    render_html,
    unsubscribe_header,
)
from pipeline.newsletter.deliver import (
    DeliveryUncertain,
    confirm_sent,
    deliver,
    doubt_line,
    resume,
    settle,
)
from pipeline.newsletter.editions import (
    RuleOutcome,
    emailed_keys,
    next_number,
    preview,
    run_rule,
    send_special,
    status,
)

__all__ = [
    "ARCHIVE_PREFIX", "REGULAR", "SPECIAL", "DeliveryUncertain", "Draft", "RuleOutcome",
    "alt_text", "archive_documents", "archive_path", "compose", "confirm_sent", "deliver",
    "doubt_line", "draft", "emailed_keys", "next_number", "pick_rendition", "preview",
    "regular_subject", "render_html", "resume", "run_rule", "send_special", "settle", "status",
    "unsubscribe_header",
]  # fmt: skip
