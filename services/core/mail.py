"""Email: the port the portal's messages go through (verification links, password
resets, invitations), with an SMTP adapter and a console adapter for development.

`CAAS_SMTP_HOST` set: SMTP (STARTTLS or implicit TLS as configured, optional login);
unset: the console adapter, which writes each email to the server log (level INFO,
logger `caas.mail`) so a developer on the embedded defaults can follow the links.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

log = logging.getLogger("caas.mail")


@dataclass(frozen=True, slots=True)
class Attachment:
    file_name: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    attachments: tuple[Attachment, ...] = ()


class Mailer(Protocol):
    async def send(self, email: Email) -> None:
        """Hand `email` over for delivery, or raise (OSError, aiosmtplib.SMTPException)."""


class ConsoleMailer:
    """Development: each email is a log line (with its text, links included)."""

    async def send(self, email: Email) -> None:
        log.info("email to %s: %s", email.to, email.subject,
                 extra={"to": email.to, "subject": email.subject, "text": email.text,
                        "attachments": [a.file_name for a in email.attachments]})


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    security: str = "starttls"  # "starttls", "tls" (implicit, port 465) or "none"
    timeout: float = 10.0


class SmtpMailer:
    """One connection per email: the portal sends few, and a pooled connection that a
    server closed while idle would fail the next send."""

    def __init__(self, options: SmtpOptions) -> None:
        self._options = options

    async def send(self, email: Email) -> None:
        options = self._options
        message = EmailMessage()
        message["From"] = options.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message.set_content(email.text)
        for attachment in email.attachments:
            main, _, sub = attachment.content_type.partition("/")
            message.add_attachment(attachment.data, maintype=main, subtype=sub,
                                   filename=attachment.file_name)
        await aiosmtplib.send(
            message, hostname=options.host, port=options.port,
            username=options.username or None, password=options.password or None,
            use_tls=options.security == "tls", start_tls=options.security == "starttls",
            timeout=options.timeout)
