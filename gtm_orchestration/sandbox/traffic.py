"""Demo webhook traffic: a stream of signed form submissions and engagement events.

``gtm demo`` runs ``DemoTraffic`` beside the receiver, so a newcomer watching the UI sees
webhook batches land and runs appear without any real form tool or sequencer. The people and
companies are made up and as messy as real form fills ("Sr. Dir. Demand Gen", "Deutschland",
"$45M", fields left out); the same seed brings the same people in the same order. Event ids
are fresh for every ``DemoTraffic``, so a second demo over the same data folder lands new
events instead of being answered as duplicates.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import secrets
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import TracebackType
from typing import Any

import httpx

from gtm_orchestration.receiver.app import ENGAGEMENT_TYPES
from gtm_orchestration.receiver.signatures import gtm_signature

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-GTM-Signature"
# Opens and visits are common, replies and meetings rare, as in any outbound sequence.
ENGAGEMENT_WEIGHTS = {
    "email_opened": 40,
    "email_clicked": 20,
    "email_replied": 6,
    "meeting_booked": 4,
    "page_visit": 30,
}
ENGAGEMENTS_PER_FORM = 1.5
# Real senders redeliver when they miss an answer; the receiver must answer "duplicate".
REDELIVERY_RATE = 0.05
MISSING_FIELD_RATE = 0.06
BLANK_FIELD_RATE = 0.03
FREE_MAIL_RATE = 0.1
MAX_BACKOFF_S = 30.0
BURST_ATTEMPTS = 3
STREAM_ATTEMPTS = 10
# Engagement follows recent sign-ups more than old ones.
RECENT_LEADS = 50
PRODUCT_SITE = "https://www.example.com"


@dataclass(frozen=True)
class _Company:
    names: tuple[str, ...]  # as different people type it
    domain: str
    country: str  # ISO 3166-1 alpha-2, spelled from _COUNTRY_SPELLINGS
    places: tuple[tuple[str, str], ...]  # (state or region, city)
    industries: tuple[str, ...]
    revenues: tuple[str, ...]
    employees: tuple[str, ...]


_COMPANIES = (
    _Company(
        ("Globex Corporation", "Globex", "GLOBEX CORP"),
        "globex.com",
        "US",
        (("CA", "San Francisco"), ("California", "Los Angeles")),
        ("Software", "Computer Software"),
        ("$1.2B", "1200000000"),
        ("5,000+", "5001-10000"),
    ),
    _Company(
        ("Initech, Inc.", "Initech Inc", "initech"),
        "initech.com",
        "US",
        (("TX", "Austin"), ("Texas", "Dallas")),
        ("Computer Software", "SaaS"),
        ("$250M", "250000000"),
        ("1001-5000", "1,500"),
    ),
    _Company(
        ("Umbrella Analytics", "umbrella analytics"),
        "umbrella-analytics.io",
        "US",
        (("NY", "New York"), ("N.Y.", "Brooklyn")),
        ("SaaS", "Information Technology"),
        ("$45M", "45 million"),
        ("201-500", "350"),
    ),
    _Company(
        ("Hooli", "HOOLI INC"),
        "hooli.com",
        "US",
        (("Calif.", "Mountain View"), ("CA", "Palo Alto")),
        ("Internet",),
        ("1,200,000,000", "$1.2bn"),
        ("10k", "10,000+"),
    ),
    _Company(
        ("Stark Industries",),
        "stark-industries.com",
        "US",
        (("New York", "New York"), ("NY", "Rochester")),
        ("Defense & Space",),
        ("$4.5B",),
        ("10,000+",),
    ),
    _Company(
        ("Wayne Enterprises", "Wayne Enterprises, Inc."),
        "wayne-enterprises.com",
        "US",
        (("IL", "Chicago"),),
        ("Financial Services", "Fintech"),
        ("$900M",),
        ("5001-10000",),
    ),
    _Company(
        ("Cyberdyne Systems",),
        "cyberdyne.ai",
        "US",
        (("WA", "Seattle"), ("Washington", "Redmond")),
        ("Software",),
        ("$80M",),
        ("201-500",),
    ),
    _Company(
        ("Soylent Corp",),
        "soylent.com",
        "US",
        (("MA", "Boston"),),
        ("Food & Beverages",),
        ("$60M",),
        ("201-500",),
    ),
    _Company(
        ("Vertriebs GmbH",),
        "vertriebsgmbh.de",
        "DE",
        (("", "Berlin"), ("Bayern", "München")),
        ("Industrial Automation",),
        ("EUR 30M", "30 Mio"),
        ("51-200",),
    ),
    _Company(
        ("Exemple Média", "Exemple Media SA"),
        "exemple-media.fr",
        "FR",
        (("", "Paris"), ("", "Lyon")),
        ("Media",),
        ("€12M",),
        ("11-50",),
    ),
    _Company(
        ("Acme Logistics S.L.", "Acme Logistics"),
        "acmelogistics.es",
        "ES",
        (("", "Madrid"), ("", "Barcelona")),
        ("Logistics",),
        ("€90M",),
        ("501-1000",),
    ),
    _Company(
        ("Northwind Traders Ltd", "Northwind"),
        "northwind.co.uk",
        "GB",
        (("", "London"), ("", "Manchester")),
        ("Retail", "E-commerce"),
        ("£40M",),
        ("201-500",),
    ),
    _Company(
        ("Sakura Tech",),
        "sakura-tech.jp",
        "JP",
        (("", "Tokyo"), ("", "Osaka")),
        ("Computer Software",),
        ("¥5B",),
        ("501-1000",),
    ),
    _Company(
        ("Maple Cloud Inc.",),
        "maplecloud.ca",
        "CA",
        (("ON", "Toronto"), ("BC", "Vancouver")),
        ("Information Technology and Services", "Tech"),
        ("CAD 20M",),
        ("51-200",),
    ),
    _Company(
        ("Tulip Data B.V.",),
        "tulipdata.nl",
        "NL",
        (("", "Amsterdam"), ("", "Utrecht")),
        ("Computer Software",),
        ("€8M",),
        ("11-50",),
    ),
    _Company(
        ("Koala Commerce Pty Ltd",),
        "koalacommerce.com.au",
        "AU",
        (("NSW", "Sydney"), ("VIC", "Melbourne")),
        ("E-commerce", "Retail"),
        ("AUD 15M",),
        ("51-200",),
    ),
)

_COUNTRY_SPELLINGS = {
    "US": ("USA", "United States", "US", "U.S.A.", "United States of America"),
    "DE": ("Deutschland", "Germany", "DE"),
    "FR": ("France", "FR"),
    "ES": ("España", "Spain"),
    "GB": ("UK", "United Kingdom", "England", "GB"),
    "JP": ("Japan", "JP"),
    "CA": ("Canada", "CA"),
    "NL": ("Netherlands", "Nederland", "Holland"),
    "AU": ("Australia", "AU"),
}

_PHONE_FORMATS = {
    "US": ("+1 ({a}) 555-01{n2}", "{a}-555-01{n2}", "({a}) 555 01{n2}", "+1-{a}-555-01{n2}"),
    "DE": ("030 {n7}", "+49 30 {n7}"),
    "FR": ("01 42 68 {n2} {m2}", "+33 1 42 68 {n2} {m2}"),
    "ES": ("+34 91 {n3} {m4}", "91 {n3} {m2} {n2}"),
    "GB": ("020 7946 0{n3}", "+44 20 7946 0{n3}"),
    "JP": ("03-5{n3}-{m4}", "+81 3 5{n3} {m4}"),
    "CA": ("+1 416 555 01{n2}", "604-555-01{n2}"),
    "NL": ("+31 20 {n3} {m4}",),
    "AU": ("+61 2 9{n3} {m4}", "(02) 9{n3} {m4}"),
}
_US_AREA_CODES = ("415", "212", "650", "512", "617", "312", "206", "646")

_FIRST_NAMES = (
    "Dana", "Michael", "Priya", "John", "Sofía", "Lukas", "Claire", "Raj", "Emma", "Kenji",
    "Anh", "Olivia", "Liam", "Noah", "Hana", "Sam", "Léa", "Tom", "Fatima", "Mateo", "Aisha",
    "Wei", "Ingrid", "Oluwaseun", "Camille", "Diego", "Yuki", "Ananya", "Marco", "Zoe",
    "Ji-woo", "Lars", "Amara", "Ethan", "Mia", "Omar", "Nora", "Felix", "Isabella", "Arjun",
)  # fmt: skip
_LAST_NAMES = (
    "Whitfield", "Okafor", "Raman", "Miller", "García", "Becker", "Martin", "Patel", "Jones",
    "Tanaka", "Nguyen", "Brown", "Wilson", "Davis", "Sato", "Rivera", "Dubois", "Baker",
    "Khan", "Rossi", "Müller", "Kim", "Schmidt", "O'Brien", "Silva", "Johansson", "Dupont",
    "Yamamoto", "Kowalski", "Haddad", "Lee", "Fernández", "Andersen", "Mensah", "Chen",
)  # fmt: skip
_TITLES = (
    "VP Marketing", "Sr. Dir. Demand Gen", "Head of RevOps", "Marketing Operations Manager",
    "CMO", "Chief Revenue Officer", "Account Executive", "SDR", "Director of Sales Development",
    "Growth Marketing Lead", "Founder & CEO", "VP Eng", "Software Engineer", "IT Manager",
    "Leiter Vertrieb", "Directeur Marketing", "Gerente de Ventas", "Customer Success Manager",
    "Product Marketing Manager", "CFO", "VP Sales | ex-Google", "Marketing @ Globex",
    "Demand Generation Specialist", "HR Business Partner", "SVP, Sales",
    "Vice President, Marketing", "Sr Product Manager", "Head of Growth", "Data Analyst",
    "Dir. Field Marketing",
)  # fmt: skip
_FREE_MAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com")
_FREELANCE_COMPANIES = ("Freelance", "Self-employed", "Independent Consultant")
_EMAIL_FORMATS = ("{first}.{last}", "{fi}.{last}", "{first}{li}", "{first}_{last}", "{first}")
_SEQUENCES = ("Webinar follow-up", "Trial nurture", "Enterprise outbound", "Event invite")
_SUBJECTS = (
    "Quick question about your pipeline",
    "Slides from the webinar",
    "Following up",
    "Your trial ends in 3 days",
    "See you at the summit?",
)
_PAGES = ("/pricing", "/product", "/customers", "/blog/lead-routing", "/demo", "/integrations")
_REFERRERS = ("https://www.google.com/", "https://www.linkedin.com/", "", "newsletter")
_MEETING_TYPES = ("Discovery call", "Product demo", "Pricing review")
_FIELDS = (
    "email", "first_name", "last_name", "title", "company", "website", "phone", "country",
    "state", "city", "industry", "annual_revenue", "employees",
)  # fmt: skip
_OPTIONAL_FIELDS = frozenset(_FIELDS) - {"email"}


class DemoLeads:
    """Made-up form submissions and engagement events, the same ones for the same seed."""

    def __init__(self, seed: int) -> None:
        self._forms = random.Random(f"{seed}:forms")
        self._engagement = random.Random(f"{seed}:engagement")
        self._used_emails: set[str] = set()

    def form_submission(self) -> dict[str, Any]:
        """A form fill keyed by the canonical lead fields; a few fields missing or blank.

        The email is always there and unique among this generator's submissions.
        """
        rng = self._forms
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        free_mail = rng.random() < FREE_MAIL_RATE
        company = rng.choice(_COMPANIES)
        state, city = rng.choice(company.places)
        email = self._unique_email(
            first, last, rng.choice(_FREE_MAIL_DOMAINS) if free_mail else company.domain
        )
        record = {
            "email": email.upper() if rng.random() < 0.05 else email,
            "first_name": _messy_case(rng, first),
            "last_name": _messy_case(rng, last),
            "title": rng.choice(_TITLES),
            "company": rng.choice(_FREELANCE_COMPANIES) if free_mail else rng.choice(company.names),
            "website": "" if free_mail else _website(rng, company.domain),
            "phone": _phone(rng, company.country),
            "country": rng.choice(_COUNTRY_SPELLINGS[company.country]),
            "state": state,
            "city": city,
            "industry": rng.choice(company.industries),
            "annual_revenue": rng.choice(company.revenues),
            "employees": rng.choice(company.employees),
        }
        submission: dict[str, Any] = {}
        for field, value in record.items():
            roll = rng.random()
            if field in _OPTIONAL_FIELDS and roll < MISSING_FIELD_RATE:
                continue  # the form had no such question
            if field in _OPTIONAL_FIELDS and roll < MISSING_FIELD_RATE + BLANK_FIELD_RATE:
                value = ""
            if value or field == "email":
                submission[field] = value
        return submission

    def engagement_event(self, emails: list[str], occurred_at: datetime) -> dict[str, Any]:
        """An engagement event of one of ``emails`` (recent ones more often) around
        ``occurred_at``, with the extras its type carries (subject, url, ...)."""
        rng = self._engagement
        kind = rng.choices(ENGAGEMENT_TYPES, [ENGAGEMENT_WEIGHTS[t] for t in ENGAGEMENT_TYPES])[0]
        at = occurred_at - timedelta(seconds=rng.randint(0, 90))
        event: dict[str, Any] = {
            "type": kind,
            "email": rng.choice(emails[-RECENT_LEADS:]),
            "occurred_at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if kind.startswith("email_"):
            event["subject"] = rng.choice(_SUBJECTS)
            event["sequence"] = rng.choice(_SEQUENCES)
        if kind in ("email_clicked", "page_visit"):
            event["url"] = PRODUCT_SITE + rng.choice(_PAGES)
        if kind == "page_visit" and (referrer := rng.choice(_REFERRERS)):
            event["referrer"] = referrer
        if kind == "meeting_booked":
            event["meeting_type"] = rng.choice(_MEETING_TYPES)
            starts = at + timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 8))
            event["starts_at"] = starts.strftime("%Y-%m-%dT%H:00:00Z")
        return event

    def _unique_email(self, first: str, last: str, domain: str) -> str:
        first, last = _ascii_slug(first), _ascii_slug(last)
        local = self._forms.choice(_EMAIL_FORMATS).format(
            first=first, last=last, fi=first[0], li=last[0]
        )
        email = f"{local}@{domain}"
        for n in itertools.count(2):
            if email not in self._used_emails:
                break
            email = f"{local}{n}@{domain}"
        self._used_emails.add(email)
        return email


def _ascii_slug(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _messy_case(rng: random.Random, name: str) -> str:
    roll = rng.random()
    if roll < 0.05:
        return name.upper()
    if roll < 0.1:
        return name.lower()
    return name


def _website(rng: random.Random, domain: str) -> str:
    return rng.choice(
        (f"https://www.{domain}", f"{domain}", f"www.{domain}", f"http://{domain}/about")
    )


def _phone(rng: random.Random, country: str) -> str:
    digits = {
        f"{name}{width}": "".join(rng.choice("0123456789") for _ in range(width))
        for name in ("n", "m")
        for width in (2, 3, 4, 7)
    }
    return rng.choice(_PHONE_FORMATS[country]).format(a=rng.choice(_US_AREA_CODES), **digits)


class _Outcome(Enum):
    LANDED = "landed"
    DUPLICATE = "duplicate"
    RETRY = "retry"  # the receiver is down or busy: send again later
    REJECTED = "rejected"  # the receiver refused the payload: sending again cannot help


@dataclass
class _Delivery:
    path: str
    body: bytes
    email: str | None  # the lead's email, for form submissions
    attempts: int = 0


class DemoTraffic:
    """Posts signed demo webhooks to a receiver: a context manager running a daemon thread.

    ``with DemoTraffic(receiver_url, secret) as traffic: ...`` posts form submissions to
    ``/webhooks/forms/{form_source}`` at about ``forms_per_minute`` and engagement events of
    the leads it posted to ``/webhooks/engagement/{engagement_provider}`` at
    ``ENGAGEMENTS_PER_FORM`` times that rate, now and then delivering an event again. The
    thread never raises: failures are logged and counted, undelivered events are retried with
    a growing back-off while the receiver is down. ``post_burst`` posts synchronously, with or
    without the thread.

    Counts: ``sent`` requests, of which ``accepted`` (2xx, ``duplicates`` among them) and
    ``failed`` (anything else, connection errors included).
    """

    def __init__(
        self,
        receiver_url: str,
        webhook_secret: str,
        *,
        forms_per_minute: float = 6,
        seed: int = 7,
        form_source: str = "leads",
        engagement_provider: str = "outreach",
        event_id_prefix: str | None = None,
    ) -> None:
        if forms_per_minute <= 0:
            raise ValueError(f"forms_per_minute must be positive, got {forms_per_minute}")
        self.receiver_url = receiver_url.rstrip("/")
        self.forms_per_minute = forms_per_minute
        self.form_source = form_source
        self.engagement_provider = engagement_provider
        self.sent = 0
        self.accepted = 0
        self.duplicates = 0
        self.failed = 0
        self._secret = webhook_secret
        self._leads = DemoLeads(seed)
        self._schedule = random.Random(f"{seed}:schedule")
        # A fixed prefix makes a replay deliver the same event ids, which the receiver
        # recognises as already landed; by default every instance sends new events.
        self._id_prefix = event_id_prefix or secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._emails: list[str] = []
        self._known_emails: set[str] = set()
        self._delivered: deque[_Delivery] = deque(maxlen=200)
        self._retries: deque[_Delivery] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._receiver_down = False
        self._http = httpx.Client(timeout=10.0)

    @property
    def emails(self) -> list[str]:
        """The emails of the form submissions the receiver accepted, oldest first."""
        with self._lock:
            return list(self._emails)

    def start(self) -> DemoTraffic:
        """Start posting on a daemon thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("the demo traffic is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop posting and wait for the thread (at most ``timeout_s``, one request's timeout)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def close(self) -> None:
        """Stop the thread and close the HTTP client."""
        self.stop()
        self._http.close()

    def __enter__(self) -> DemoTraffic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def post_burst(self, n_forms: int, n_engagement: int) -> list[str]:
        """Post ``n_forms`` form submissions, then ``n_engagement`` engagement events of the
        leads posted so far, each once, waiting for every answer.

        A delivery the receiver cannot take is tried ``BURST_ATTEMPTS`` times. Returns the
        emails (lower case, as the CRM keys them) of the submissions the receiver accepted.
        Raises ``ValueError`` when engagement is asked for before any lead was posted.
        """
        emails: list[str] = []
        for _ in range(n_forms):
            delivery = self._new_form()
            if self._deliver_with_retries(delivery) in (_Outcome.LANDED, _Outcome.DUPLICATE):
                emails.append(delivery.email or "")
        if n_engagement and not self.emails:
            raise ValueError("engagement events need leads: post at least one form first")
        for _ in range(n_engagement):
            self._deliver_with_retries(self._new_engagement())
        return emails

    def _run(self) -> None:
        form_interval = 60.0 / self.forms_per_minute
        engagement_interval = form_interval / ENGAGEMENTS_PER_FORM
        # The first form goes out at once so the demo shows something straight away.
        next_form = time.monotonic()
        next_engagement = next_form + engagement_interval
        backoff = 0.0
        while not self._stopping.wait(max(0.0, min(next_form, next_engagement) - time.monotonic())):
            try:
                receiver_up = self._deliver_retries()
                if receiver_up:
                    if next_form <= next_engagement:
                        next_form += form_interval * self._schedule.uniform(0.5, 1.5)
                        receiver_up = self._deliver_scheduled(self._new_form())
                    else:
                        next_engagement += engagement_interval * self._schedule.uniform(0.5, 1.5)
                        if self.emails:
                            receiver_up = self._deliver_scheduled(self._new_engagement())
                if receiver_up and self._schedule.random() < REDELIVERY_RATE:
                    self._redeliver()
            except Exception:
                logger.exception("demo traffic: unexpected error; carrying on")
                receiver_up = False
            if receiver_up:
                backoff = 0.0
                continue
            backoff = min(max(1.0, backoff * 2), MAX_BACKOFF_S)
            if self._stopping.wait(backoff):
                return
            # Resume the normal pace instead of catching up with a burst.
            next_form = max(next_form, time.monotonic())
            next_engagement = max(next_engagement, time.monotonic() + engagement_interval / 2)

    def _deliver_retries(self) -> bool:
        """Send what waits for a retry; False when the receiver still does not take it."""
        while self._retries and not self._stopping.is_set():
            delivery = self._retries[0]
            outcome = self._deliver(delivery)
            if outcome is _Outcome.RETRY:
                self._give_up_after(delivery, STREAM_ATTEMPTS)
                return False
            self._retries.popleft()
        return True

    def _deliver_scheduled(self, delivery: _Delivery) -> bool:
        if self._deliver(delivery) is _Outcome.RETRY:
            self._retries.append(delivery)
            return False
        return True

    def _give_up_after(self, delivery: _Delivery, attempts: int) -> None:
        if delivery.attempts >= attempts:
            self._retries.remove(delivery)
            logger.warning(
                "demo traffic: gave up on %s after %d attempts", delivery.path, delivery.attempts
            )

    def _redeliver(self) -> None:
        with self._lock:
            if not self._delivered:
                return
            earlier = self._schedule.choice(self._delivered)
        self._deliver(_Delivery(earlier.path, earlier.body, earlier.email))

    def _deliver_with_retries(self, delivery: _Delivery) -> _Outcome:
        outcome = self._deliver(delivery)
        while outcome is _Outcome.RETRY and delivery.attempts < BURST_ATTEMPTS:
            time.sleep(0.5 * delivery.attempts)
            outcome = self._deliver(delivery)
        return outcome

    def _new_form(self) -> _Delivery:
        with self._lock:
            submission = self._leads.form_submission()
            submission["event_id"] = self._next_event_id("form")
        return _Delivery(
            f"/webhooks/forms/{self.form_source}",
            _json_body(submission),
            str(submission["email"]).strip().lower(),
        )

    def _new_engagement(self) -> _Delivery:
        with self._lock:
            event = {
                "event_id": self._next_event_id("eng"),
                **self._leads.engagement_event(self._emails, datetime.now(UTC)),
            }
        return _Delivery(
            f"/webhooks/engagement/{self.engagement_provider}", _json_body(event), None
        )

    def _next_event_id(self, kind: str) -> str:
        return f"demo-{kind}-{self._id_prefix}-{next(self._ids):06d}"

    def _deliver(self, delivery: _Delivery) -> _Outcome:
        """POST one delivery, signed, and count and log what the receiver answered."""
        delivery.attempts += 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: gtm_signature(self._secret, delivery.body),
        }
        try:
            response = self._http.post(
                self.receiver_url + delivery.path, content=delivery.body, headers=headers
            )
        except httpx.HTTPError as error:
            return self._record(delivery, _Outcome.RETRY, f"{type(error).__name__}: {error}")
        if response.is_success:
            duplicate = _answer_status(response) == "duplicate"
            return self._record(delivery, _Outcome.DUPLICATE if duplicate else _Outcome.LANDED)
        detail = f"{response.status_code} {response.text[:200]}"
        if response.status_code == 429 or response.status_code >= 500:
            return self._record(delivery, _Outcome.RETRY, detail)
        return self._record(delivery, _Outcome.REJECTED, detail)

    def _record(self, delivery: _Delivery, outcome: _Outcome, detail: str = "") -> _Outcome:
        with self._lock:
            self.sent += 1
            if outcome in (_Outcome.LANDED, _Outcome.DUPLICATE):
                self.accepted += 1
                self.duplicates += outcome is _Outcome.DUPLICATE
                if delivery.email and delivery.email not in self._known_emails:
                    self._known_emails.add(delivery.email)
                    self._emails.append(delivery.email)
                self._delivered.append(delivery)
            else:
                self.failed += 1
            was_down, self._receiver_down = self._receiver_down, outcome is _Outcome.RETRY
        if outcome is _Outcome.REJECTED:
            logger.warning("demo traffic: %s refused: %s", delivery.path, detail)
        elif outcome is _Outcome.RETRY and not was_down:
            logger.warning(
                "demo traffic: receiver at %s not taking events (%s); retrying with back-off",
                self.receiver_url,
                detail,
            )
        elif was_down and outcome is not _Outcome.RETRY:
            logger.info("demo traffic: receiver at %s takes events again", self.receiver_url)
        return outcome


def _json_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def _answer_status(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer.get("status") if isinstance(answer, dict) else None
