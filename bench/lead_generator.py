"""Large, realistic lead files, generated in DuckDB: a million rows in a few seconds.

``write_lead_file(path, n, seed)`` writes a CSV as a lead list export looks: the header row
uses aliases (``Email Address``, ``Job Title``, ``State/Province``) and an ignored ``Notes``
column, values are as messy as people type them, and the cardinalities are those of a real
list rather than of a toy one:

- every person has an e-mail address of their own (a unique number in the local part), in
  upper case, padded with spaces, as ``Name <address>`` or ``mailto:`` now and then; about
  3% of the rows are the same person again (another spelling of the address, other values),
  so leads get merged;
- 5,000 companies (domains under a dozen public suffixes, a few spellings of each name,
  website written four ways, messy revenue and headcount strings), weighted so that a few
  companies have many leads and most have few; about 12% of people use a free-mail address;
- a few thousand distinct job titles, about a hundred spellings of some thirty countries
  (and placeholders such as ``N/A`` or ``EMEA``), states written as codes or names;
- phone numbers are the companies' main lines, a few per company in two formats each;
- a submission date in five formats (ISO, US ``03/04/2025``, ``March 4, 2025``, ISO with a
  time, Unix milliseconds), blank for 10% and not a date for 0.2%; a marketing opt-in as
  people export it (``Yes``, ``TRUE``, ``0``, ``Opted In``), blank for 30%, ``maybe`` now
  and then;
- about 0.4% of the rows have no or a malformed e-mail address, 0.02% a spreadsheet formula,
  0.01% a field too many, some blank lines, and a few notes span two lines.

The same ``n`` and ``seed`` give the same file, byte for byte, with the same DuckDB version.
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pyarrow as pa

HEADER = (
    "Email Address",
    "First Name",
    "Last Name",
    "Job Title",
    "Company",
    "Website",
    "Phone Number",
    "Country",
    "State/Province",
    "City",
    "Industry",
    "Annual Revenue",
    "Employees",
    "Submitted At",
    "Marketing Opt-In",
    "Notes",
)
COMPANIES = 5_000

_FIRST = (
    "Dana", "Michael", "Priya", "John", "Sofía", "Lukas", "Claire", "Raj", "Emma", "Kenji",
    "Anh", "Olivia", "Liam", "Noah", "Hana", "Sam", "Léa", "Tom", "Fatima", "Mateo", "Aisha",
    "Wei", "Ingrid", "Oluwaseun", "Camille", "Diego", "Yuki", "Ananya", "Marco", "Zoe",
    "Ji-woo", "Lars", "Amara", "Ethan", "Mia", "Omar", "Nora", "Felix", "Isabella", "Arjun",
    "Chloe", "Daniel", "Sarah", "David", "Laura", "James", "Anna", "Robert", "Maria", "William",
    "Julia", "Thomas", "Elena", "Richard", "Sophie", "Charles", "Lucas", "Ava", "Mohammed",
    "Chiara", "Pedro", "Ines", "Jakub", "Zofia", "Sven", "Astrid", "Hiroshi", "Mei", "Rahul",
    "Deepa", "Kwame", "Ama", "Tariq", "Leila", "Jean-Luc", "Anne-Marie", "Björn", "Søren",
    "Zoë", "Renée", "José", "Çağla", "Łukasz", "Ngozi", "Ravi", "Siobhan", "Niamh", "Ciarán"
)  # fmt: skip
_LAST = (
    "Whitfield", "Okafor", "Raman", "Miller", "García", "Becker", "Martin", "Patel", "Jones",
    "Tanaka", "Nguyen", "Brown", "Wilson", "Davis", "Sato", "Rivera", "Dubois", "Baker", "Khan",
    "Rossi", "Müller", "Kim", "Schmidt", "O'Brien", "Silva", "Johansson", "Dupont", "Yamamoto",
    "Kowalski", "Haddad", "Lee", "Fernández", "Andersen", "Mensah", "Chen", "Smith", "Johnson",
    "Williams", "Taylor", "Anderson", "Thomas", "Moore", "Jackson", "White", "Harris", "Clark",
    "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Lopez", "Hill", "Scott", "Green",
    "Adams", "Nelson", "Carter", "Mitchell", "Perez", "Roberts", "Turner", "Phillips",
    "Campbell", "Parker", "Evans", "Edwards", "Collins", "Stewart", "Morris", "Murphy", "Cook",
    "Rogers", "Morgan", "Cooper", "Peterson", "Reed", "Bailey", "Bell", "Gomez", "Kelly",
    "Howard", "Ward", "Cox", "Diaz", "Richardson", "Wood", "Watson", "Brooks", "Bennett",
    "Gray", "James", "Hughes", "Price", "Sanders", "Myers", "Long", "Ross", "Foster", "Fischer",
    "Weber", "Wagner", "Meyer", "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter",
    "Klein", "Wolf", "Schröder", "Neumann", "Bernard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefebvre", "Michel", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
    "Greco", "Bruno", "Gallo", "Conti", "De", "Luca", "Mancini", "Costa", "Giordano", "Rizzo",
    "Lombardi", "Moretti", "Suzuki", "Takahashi", "Watanabe", "Ito", "Nakamura", "Kobayashi",
    "Kato", "Yoshida", "Yamada", "Sasaki", "Wang", "Li", "Zhang", "Liu", "Yang", "Huang",
    "Zhao", "Wu", "Zhou", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo", "Singh",
    "Kumar", "Sharma", "Gupta", "Shah", "Mehta", "Iyer", "Reddy", "Nair", "Van", "der", "Berg",
    "De", "Jong", "Jansen", "De", "Vries", "Bakker", "Visser", "Smit", "Meijer", "Mulder",
    "Bos", "Vos", "Peters", "Hendriks", "Dekker", "Brouwer", "De", "Wit", "Dijkstra", "Smits",
    "Nowak", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński",
    "Szymański", "Woźniak", "Dąbrowski", "Nilsson", "Larsson", "Olsson", "Persson", "Svensson",
    "Gustafsson", "Pettersson", "Jónsson", "Hansen", "Nielsen", "Jensen", "Pedersen",
    "Sørensen", "Rasmussen", "Ó", "Súilleabháin"
)  # fmt: skip
_FREE_MAIL = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "hotmail.fr", "yahoo.co.uk",
    "web.de", "gmx.de", "icloud.com", "aol.com", "protonmail.com", "orange.fr", "libero.it",
)  # fmt: skip
_FREELANCE = ("Freelance", "Self-employed", "Independent Consultant", "n/a", "-")

# Country spellings and where companies are: (code, weight, spellings, suffixes, places).
# Places are (state or region as typed, city); "" is a state left blank.
_COUNTRIES: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]]
_COUNTRIES = (
    ("US", 40, ("USA", "United States", "US", "U.S.A.", "United States of America", "usa",
                "U.S.", "united states", "America", "Estados Unidos"),
     ("com", "io", "ai", "net", "co"),
     (("CA", "San Francisco"), ("California", "Los Angeles"), ("Calif.", "San Diego"),
      ("NY", "New York"), ("New York", "Brooklyn"), ("N.Y.", "Buffalo"), ("TX", "Austin"),
      ("Texas", "Dallas"), ("WA", "Seattle"), ("Washington", "Redmond"), ("MA", "Boston"),
      ("Mass.", "Cambridge"), ("IL", "Chicago"), ("GA", "Atlanta"), ("CO", "Denver"),
      ("Colorado", "Boulder"), ("FL", "Miami"), ("Florida", "Tampa"), ("NC", "Raleigh"),
      ("OR", "Portland"), ("Utah", "Salt Lake City"), ("UT", "Lehi"), ("AZ", "Phoenix"),
      ("PA", "Philadelphia"), ("Ohio", "Columbus"), ("MN", "Minneapolis"), ("VA", "Arlington"),
      ("", "New York"), ("", "Chicago"), ("Cali", "Oakland"))),
    ("GB", 10, ("UK", "United Kingdom", "England", "GB", "Great Britain", "U.K.", "uk",
                "Scotland"),
     ("co.uk", "com", "io"),
     (("", "London"), ("", "Manchester"), ("England", "Leeds"), ("Scotland", "Edinburgh"),
      ("Greater London", "London"), ("", "Bristol"))),
    ("DE", 8, ("Deutschland", "Germany", "DE", "germany", "GER", "Federal Republic of Germany"),
     ("de", "com", "io"),
     (("", "Berlin"), ("Bayern", "München"), ("Bavaria", "Munich"), ("NRW", "Köln"),
      ("Hessen", "Frankfurt am Main"), ("", "Hamburg"), ("Baden-Württemberg", "Stuttgart"))),
    ("FR", 6, ("France", "FR", "france", "République française"),
     ("fr", "com", "io"),
     (("", "Paris"), ("", "Lyon"), ("Île-de-France", "Paris"), ("", "Marseille"),
      ("Occitanie", "Toulouse"))),
    ("CA", 5, ("Canada", "CA", "canada", "CAN"),
     ("ca", "com"),
     (("ON", "Toronto"), ("Ontario", "Ottawa"), ("BC", "Vancouver"), ("British Columbia",
      "Victoria"), ("QC", "Montréal"), ("Québec", "Québec"), ("Alberta", "Calgary"),
      ("AB", "Edmonton"))),
    ("AU", 4, ("Australia", "AU", "australia", "AUS"),
     ("com.au", "com", "io"),
     (("NSW", "Sydney"), ("VIC", "Melbourne"), ("Victoria", "Geelong"), ("Queensland",
      "Brisbane"), ("QLD", "Gold Coast"), ("WA", "Perth"))),
    ("NL", 4, ("Netherlands", "Nederland", "Holland", "The Netherlands", "NL"),
     ("nl", "com", "io"), (("", "Amsterdam"), ("", "Utrecht"), ("Noord-Holland", "Haarlem"),
                           ("", "Rotterdam"))),
    ("ES", 3, ("España", "Spain", "ES", "espana"),
     ("es", "com"), (("", "Madrid"), ("", "Barcelona"), ("Cataluña", "Barcelona"),
                     ("", "Valencia"))),
    ("JP", 3, ("Japan", "JP", "日本", "japan"),
     ("jp", "co.jp", "com"), (("", "Tokyo"), ("", "Osaka"), ("Tokyo", "Shibuya"))),
    ("IN", 4, ("India", "IN", "india", "Bharat"),
     ("in", "co.in", "com", "io"), (("Karnataka", "Bangalore"), ("KA", "Bengaluru"),
                                    ("Maharashtra", "Mumbai"), ("", "Pune"), ("", "Delhi"))),
    ("BR", 2, ("Brazil", "Brasil", "BR"),
     ("com.br", "com"), (("SP", "São Paulo"), ("São Paulo", "Campinas"), ("RJ",
                         "Rio de Janeiro"))),
    ("SE", 2, ("Sweden", "Sverige", "SE"), ("se", "com"), (("", "Stockholm"), ("", "Malmö"))),
    ("IE", 2, ("Ireland", "IE", "Éire", "Republic of Ireland"), ("ie", "com"),
     (("", "Dublin"), ("Co. Cork", "Cork"))),
    ("CH", 1, ("Switzerland", "Schweiz", "Suisse", "CH"), ("ch", "com"),
     (("", "Zürich"), ("ZH", "Zurich"), ("", "Genève"))),
    ("IT", 2, ("Italy", "Italia", "IT"), ("it", "com"), (("", "Milano"), ("", "Roma"))),
    ("SG", 1, ("Singapore", "SG"), ("sg", "com.sg", "com"), (("", "Singapore"),)),
    ("MX", 1, ("Mexico", "México", "MX"), ("com.mx", "mx", "com"),
     (("CDMX", "Ciudad de México"), ("Jalisco", "Guadalajara"))),
    ("PL", 1, ("Poland", "Polska", "PL"), ("pl", "com"), (("", "Warszawa"), ("", "Kraków"))),
    ("IL", 1, ("Israel", "IL"), ("co.il", "com", "io"), (("", "Tel Aviv"),)),
    ("DK", 1, ("Denmark", "Danmark", "DK"), ("dk", "com"), (("", "København"),)),
    ("NO", 1, ("Norway", "Norge", "NO"), ("no", "com"), (("", "Oslo"),)),
    ("FI", 1, ("Finland", "Suomi", "FI"), ("fi", "com"), (("", "Helsinki"),)),
    ("BE", 1, ("Belgium", "Belgique", "België", "BE"), ("be", "com"), (("", "Brussels"),)),
    ("AT", 1, ("Austria", "Österreich", "AT"), ("at", "com"), (("", "Wien"),)),
    ("PT", 1, ("Portugal", "PT"), ("pt", "com"), (("", "Lisboa"),)),
    ("ZA", 1, ("South Africa", "ZA", "RSA"), ("co.za", "com"), (("Gauteng", "Johannesburg"),)),
    ("NZ", 1, ("New Zealand", "NZ", "Aotearoa"), ("co.nz", "com"), (("", "Auckland"),)),
    ("KR", 1, ("South Korea", "Korea", "Republic of Korea", "KR"), ("co.kr", "com"),
     (("", "Seoul"),)),
    ("AE", 1, ("United Arab Emirates", "UAE", "U.A.E.", "AE"), ("ae", "com"),
     (("", "Dubai"),)),
)  # fmt: skip
# Values typed into the country field that are no country.
_NOT_COUNTRIES = ("N/A", "EMEA", "Europe", "Unknown", "-", "APAC", "Other", "Remote")
# A lead-capture form fills in these phone formats per country; {n..}/{m..} are digits.
_PHONE_FORMATS = {
    "US": ("+1 ({a}) 555-01{n2}", "{a}-555-01{n2}", "({a}) 555 01{n2}", "+1-{a}-555-01{n2}"),
    "CA": ("+1 416 555 01{n2}", "604-555-01{n2}"),
    "DE": ("030 {n7}", "+49 30 {n7}"),
    "FR": ("01 42 68 {n2} {m2}", "+33 1 42 68 {n2} {m2}"),
    "ES": ("+34 91 {n3} {m4}", "91 {n3} {m2} {n2}"),
    "GB": ("020 7946 0{n3}", "+44 20 7946 0{n3}"),
    "JP": ("03-5{n3}-{m4}", "+81 3 5{n3} {m4}"),
    "NL": ("+31 20 {n3} {m4}", "020 {n3} {m4}"),
    "AU": ("+61 2 9{n3} {m4}", "(02) 9{n3} {m4}"),
}
_US_AREA_CODES = ("415", "212", "650", "512", "617", "312", "206", "646", "303", "404")

_NAME_WORDS = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Cyberdyne", "Soylent",
    "Vertex", "Northwind", "Tulip", "Maple", "Koala", "Sakura", "Blue", "Red", "Green",
    "Silver", "Golden", "Bright", "Swift", "Nimbus", "Apex", "Summit", "Orbit", "Quantum",
    "Pixel", "Cobalt", "Crimson", "Granite", "Harbor", "Lumen", "Nova", "Onyx", "Pioneer",
    "Quartz", "Redwood", "Sierra", "Terra", "Unity", "Vantage", "Willow", "Zenith", "Atlas",
    "Beacon", "Cascade", "Delta", "Echo", "Falcon", "Horizon", "Ion", "Juniper", "Kestrel",
    "Lattice", "Meridian", "Nexus", "Oak", "Polar", "Radiant", "Sapphire", "Tidal", "Ultra",
    "Vivid", "Western", "Eastern", "Northern", "Southern", "Pacific", "Atlantic", "Alpine",
    "Urban", "Rural", "Metro", "Global", "Prime"
)  # fmt: skip
_NAME_KINDS = (
    "Analytics", "Logistics", "Systems", "Software", "Labs", "Data", "Cloud", "Media", "Health",
    "Capital", "Foods", "Energy", "Robotics", "Security", "Networks", "Consulting", "Partners",
    "Retail", "Commerce", "Bank", "Insurance", "Motors", "Pharma", "Bio", "Learning", "Games",
    "Studios", "Foods", "Textiles", "Materials", "Devices", "Telecom", "Travel"
)  # fmt: skip
_LEGAL = ("Inc.", "Inc", "LLC", "Ltd", "Ltd.", "GmbH", "S.A.", "SAS", "B.V.", "Pty Ltd",
          "Corp.", "Corporation", "AG", "S.L.", "plc", "K.K.")  # fmt: skip
_INDUSTRIES = (
    "Software", "Computer Software", "SaaS", "Information Technology",
    "Information Technology and Services", "IT Services", "Tech", "Internet", "Financial Services",
    "Fintech", "Banking", "Insurance", "Healthcare", "Hospital & Health Care", "Pharmaceuticals",
    "Biotechnology", "Retail", "E-commerce", "Consumer Goods", "Manufacturing",
    "Industrial Automation", "Logistics", "Logistics and Supply Chain", "Transportation", "Media",
    "Marketing & Advertising", "Marketing and Advertising", "Education", "Higher Education",
    "E-Learning", "Telecommunications", "Oil & Energy", "Renewables", "Real Estate",
    "Construction", "Management Consulting", "Consulting", "Legal Services", "Government",
    "Non-profit", "Food & Beverages", "Automotive", "Defense & Space", "Gaming",
    "Computer Games", "Hospitality", "Travel", "Other", "N/A", "misc",
)  # fmt: skip
_SENIORITY = ("", "Senior ", "Sr. ", "Sr ", "Junior ", "Lead ", "Principal ", "Associate ")
_ROLES = ("Manager", "Director", "Specialist", "Analyst", "Engineer", "Executive",
          "Coordinator", "Consultant", "Architect", "Representative")  # fmt: skip
_AREAS = (
    "Marketing", "Demand Generation", "Demand Gen", "Sales", "Sales Development",
    "Revenue Operations", "RevOps", "Marketing Operations", "Product Marketing", "Engineering",
    "Software", "IT", "Finance", "HR", "People", "Customer Success", "Growth", "Data",
    "Partnerships", "Field Marketing", "Content", "Brand", "Procurement", "Operations",
    "Security", "Product", "Account", "Business Development", "Digital Marketing", "Platform",
)  # fmt: skip
_EXECUTIVE = (
    "CEO", "Founder & CEO", "Co-Founder", "CTO", "CFO", "CMO", "CRO", "COO", "CIO", "CISO",
    "Chief Revenue Officer", "Chief Marketing Officer", "President", "Owner", "Managing Director",
    "Geschäftsführer", "Leiter Vertrieb", "Leiterin Marketing", "Directeur Marketing",
    "Directrice Commerciale", "Gerente de Ventas", "Responsable Marketing", "Intern", "Student",
    "Retired", "n/a", "-", "Other",
)  # fmt: skip
_DECORATIONS = (", EMEA", " - EMEA", " | ex-Google", " (Interim)", ", North America", " II",
                " @ Acme", ", DACH", " / Team Lead")  # fmt: skip
_BAD_EMAILS = ("n/a", "jane.doe", "jane@", "@acme.com", "jane@acme", "jane@@acme.com",
               "jane@acme.con", "jane doe@acme.com", "none", "-", "test@localhost",
               "jane@acme..com", "jane@192.168.0.1")  # fmt: skip
_FORMULAS = ('=HYPERLINK("http://x.example/","Click")', "@SUM(A1:A9)", "+cmd|' /C calc'!A0",
             "-2+3+cmd", "=1+1")  # fmt: skip
_NOTES = ("Met at the booth", "Wants a demo in Q3", "Asked about pricing", "Call back",
          "Interested in the API, not the UI", "Referred by a partner",
          "Line one of a note\nline two of a note")  # fmt: skip


def _money(rng: random.Random, amount: float, country: str) -> str:
    """An annual revenue as people write it: $45M, 45000000, EUR 30 Mio, ~1.2bn, n/a."""
    millions = amount / 1e6
    short = f"{millions:.0f}M" if millions < 1000 else f"{millions / 1000:.1f}B"
    mark = {"US": "$", "GB": "£", "JP": "¥", "DE": "€", "FR": "€", "ES": "€", "NL": "€"}.get(
        country, "$"
    )
    return rng.choice(
        (
            f"{mark}{short}",
            f"{round(amount, -5):.0f}",
            f"{round(amount, -5):,.0f}",
            f"{millions:.0f} million",
            f"USD {short}",
            f"EUR {millions:.0f} Mio",
            f"~{short.lower()}",
            f"{millions:.0f}-{millions * 2:.0f}M",
            "n/a",
            "confidential",
        )
    )


def _headcount(rng: random.Random, employees: int) -> str:
    """A headcount as people write it: 201-500, 350, 1,500, 10k, 5,000+, about 200 staff."""
    bands = ((10, "1-10"), (50, "11-50"), (200, "51-200"), (500, "201-500"), (1000, "501-1000"),
             (5000, "1001-5000"), (10000, "5001-10000"))  # fmt: skip
    band = next((label for top, label in bands if employees <= top), "10,000+")
    return rng.choice(
        (
            band,
            str(employees),
            f"{employees:,}",
            f"{employees / 1000:.0f}k" if employees >= 1000 else f"~{employees}",
            f"about {employees} staff",
            f"{employees}+",
            "unknown",
        )
    )


def _phone(rng: random.Random, country: str, formats: int) -> list[str]:
    """``formats`` spellings of one main line of a company in ``country``."""
    digits = {
        f"{name}{width}": "".join(rng.choice("0123456789") for _ in range(width))
        for name in ("n", "m")
        for width in (2, 3, 4, 7)
    }
    patterns = _PHONE_FORMATS.get(country, _PHONE_FORMATS["US"])
    area = rng.choice(_US_AREA_CODES)
    return [p.format(a=area, **digits) for p in rng.sample(patterns, min(formats, len(patterns)))]


def _companies(rng: random.Random) -> pa.Table:
    weights = [c[1] for c in _COUNTRIES]
    domains: set[str] = set()
    rows = []
    for company_id in range(COMPANIES):
        code, _, _, suffixes, places = rng.choices(_COUNTRIES, weights)[0]
        word, kind = rng.choice(_NAME_WORDS), rng.choice(_NAME_KINDS)
        base = f"{word} {kind}" if rng.random() < 0.8 else word + kind.lower()
        slug = base.lower().replace(" ", rng.choice(("", "-")))
        domain = f"{slug}.{rng.choice(suffixes)}"
        n = 2
        while domain in domains:
            domain = f"{slug}{n}.{rng.choice(suffixes)}"
            n += 1
        domains.add(domain)
        legal = rng.choice(_LEGAL)
        names = [f"{base} {legal}", base, f"{base.upper()} {legal.upper()}", base.lower()]
        employees = int(10 ** rng.uniform(0.5, 4.7))
        revenue = employees * rng.uniform(80_000, 400_000)
        websites = [f"https://www.{domain}", domain, f"www.{domain}", f"http://{domain}/about"]
        phones = [p for _ in range(2) for p in _phone(rng, code, 2)]
        rows.append(
            {
                "company_id": company_id,
                "names": rng.sample(names, rng.randint(1, 3)),
                "domain": domain,
                "country": code,
                "places": [list(p) for p in rng.sample(places, min(len(places), 3))],
                "industries": rng.sample(_INDUSTRIES, rng.randint(1, 2)),
                "revenues": [_money(rng, revenue, code) for _ in range(2)],
                "employees": [_headcount(rng, employees) for _ in range(2)],
                "websites": rng.sample(websites, 2),
                "phones": phones,
            }
        )
    return pa.Table.from_pylist(rows)


def _titles(rng: random.Random) -> list[str]:
    titles = {f"{s}{a} {r}" for s in _SENIORITY for a in _AREAS for r in _ROLES}
    titles |= {f"{r} of {a}" for r in _ROLES for a in _AREAS}
    titles |= {
        f"{p} {a}" for p in ("VP", "VP of", "Vice President,", "Head of", "SVP") for a in _AREAS
    }
    titles |= set(_EXECUTIVE)
    ordered = sorted(titles)
    rng.shuffle(ordered)
    keep = ordered[:2_600]
    decorated = [t + rng.choice(_DECORATIONS) for t in rng.sample(keep, 300)]
    cased = [t.upper() for t in rng.sample(keep, 100)] + [t.lower() for t in rng.sample(keep, 100)]
    return keep + decorated + cased


def _quoted(column: str) -> str:
    """SQL quoting a value for CSV the way spreadsheet exports do: only when needed."""
    return (
        f"CASE WHEN regexp_matches({column}, '[\",\\r\\n]') "
        f"THEN '\"' || replace({column}, '\"', '\"\"') || '\"' ELSE {column} END"
    )


def write_lead_file(path: Path, n: int, seed: int) -> None:
    """Write ``n`` lead rows (plus a header row and a few blank lines) to ``path`` as CSV."""
    rng = random.Random(f"{seed}:leads")
    con = duckdb.connect()
    con.register("companies", _companies(rng))
    spellings = {code: list(names) for code, _, names, _, _ in _COUNTRIES}
    con.execute(
        "CREATE TABLE pools AS SELECT ?::VARCHAR[] AS first_names, "
        "?::VARCHAR[] AS last_names, ?::VARCHAR[] AS titles, "
        "?::VARCHAR[] AS free_mail_domains, ?::VARCHAR[] AS freelance_names, "
        "?::VARCHAR[] AS not_countries, ?::VARCHAR[] AS bad_emails, ?::VARCHAR[] AS formulas, "
        "?::VARCHAR[] AS notes, ?::MAP(VARCHAR, VARCHAR[]) AS spellings",
        [
            list(_FIRST),
            list(_LAST),
            _titles(rng),
            list(_FREE_MAIL),
            list(_FREELANCE),
            list(_NOT_COUNTRIES),
            list(_BAD_EMAILS),
            list(_FORMULAS),
            list(_NOTES),
            spellings,
        ],
    )
    # u(i, k): a uniform number in [0, 1) for row i and purpose k; pick(l, i, k) an element
    # of list l; skewed(...) one that favours the head of the list (a few popular values).
    con.execute(f"CREATE MACRO u(i, k) AS (hash(i, {seed}, k) % 1000003) / 1000003.0")
    con.execute("CREATE MACRO pick(l, i, k) AS l[1 + floor(u(i, k) * len(l))::BIGINT]")
    con.execute("CREATE MACRO skewed(l, i, k) AS l[1 + floor(pow(u(i, k), 2.5) * len(l))::BIGINT]")
    con.execute(
        "CREATE MACRO messy_case(x, i, k) AS CASE WHEN u(i, k) < 0.05 THEN upper(x) "
        "WHEN u(i, k) < 0.1 THEN lower(x) ELSE x END"
    )
    con.execute("CREATE MACRO blank(x, i, k) AS CASE WHEN u(i, k) < 0.08 THEN '' ELSE x END")
    con.execute(
        "CREATE MACRO slug(x) AS regexp_replace(strip_accents(lower(x)), '[^a-z0-9]', '', 'g')"
    )
    con.execute(
        f"""
        CREATE TABLE people AS
        WITH ids AS (
            SELECT i,
                   -- about 3% of rows are a person already in the file, typed again
                   CASE WHEN i > 10 AND u(i, 1) < 0.03 THEN hash(i, {seed}, 2) % i ELSE i END
                       AS person
            FROM range({n}) t(i)
        )
        SELECT i, person,
               pick(p.first_names, person, 3) AS first, pick(p.last_names, person, 4) AS last,
               floor(pow(u(person, 5), 2.5) * {COMPANIES})::BIGINT AS company_id,
               u(person, 6) < 0.12 AS free_mail,
               CASE WHEN u(person, 6) < 0.07 THEN pick(p.freelance_names, person, 7) END
                   AS freelance,
               pick(p.free_mail_domains, person, 8) AS free_domain,
               floor(u(person, 9) * 5)::INT AS email_format
        FROM ids, pools p
        """
    )
    con.execute(
        """
        CREATE TABLE rows AS
        SELECT r.i, c.*,
               CASE r.email_format
                   WHEN 0 THEN slug(r.first) || '.' || slug(r.last)
                   WHEN 1 THEN left(slug(r.first), 1) || '.' || slug(r.last)
                   WHEN 2 THEN slug(r.first) || left(slug(r.last), 1)
                   WHEN 3 THEN slug(r.first) || '_' || slug(r.last)
                   ELSE slug(r.first)
               END || r.person::VARCHAR || '@'
               || CASE WHEN r.free_mail THEN r.free_domain ELSE c.domain END AS address,
               r.first, r.last, r.free_mail, r.freelance
        FROM people r JOIN companies c USING (company_id)
        """
    )
    fields = {
        "email": """CASE
            WHEN u(i, 10) < 0.002 THEN ''
            WHEN u(i, 10) < 0.004 THEN pick(bad_emails, i, 11)
            WHEN u(i, 10) < 0.05 THEN upper(address)
            WHEN u(i, 10) < 0.07 THEN '  ' || address || ' '
            WHEN u(i, 10) < 0.075 THEN first || ' ' || last || ' <' || address || '>'
            WHEN u(i, 10) < 0.078 THEN 'mailto:' || address
            WHEN u(i, 10) < 0.08 THEN address || '.'
            ELSE address END""",
        "first_name": "blank(messy_case(first, i, 12), i, 13)",
        "last_name": "blank(messy_case(last, i, 14), i, 15)",
        "title": """CASE WHEN u(i, 16) < 0.0001 THEN pick(formulas, i, 17)
            ELSE blank(skewed(titles, i, 18), i, 19) END""",
        "company": """CASE WHEN u(i, 20) < 0.0001 THEN pick(formulas, i, 21)
            WHEN freelance IS NOT NULL THEN freelance
            ELSE blank(pick(names, i, 22), i, 23) END""",
        "website": "CASE WHEN free_mail THEN '' ELSE blank(pick(websites, i, 24), i, 25) END",
        "phone": "CASE WHEN u(i, 26) < 0.3 THEN '' ELSE pick(phones, i, 27) END",
        "country": """CASE WHEN u(i, 28) < 0.02 THEN pick(not_countries, i, 29)
            ELSE blank(pick(spellings[country], i, 30), i, 31) END""",
        "state": "blank(pick(places, i, 32)[1], i, 33)",
        "city": "blank(pick(places, i, 32)[2], i, 34)",
        "industry": "blank(pick(industries, i, 35), i, 36)",
        "annual_revenue": "blank(pick(revenues, i, 37), i, 38)",
        "employees": "blank(pick(employees, i, 39), i, 40)",
        # A day of 2025 written one of the ways form tools export it, now and then not a date.
        "submitted_at": """CASE
            WHEN u(i, 45) < 0.1 THEN ''
            WHEN u(i, 45) < 0.102 THEN pick(['soon', '31/02/2025', 'N/A'], i, 46)
            ELSE CASE floor(u(i, 47) * 5)::INT
                WHEN 0 THEN strftime(DATE '2025-01-01' + floor(u(i, 48) * 365)::INT, '%Y-%m-%d')
                WHEN 1 THEN strftime(DATE '2025-01-01' + floor(u(i, 48) * 365)::INT, '%m/%d/%Y')
                WHEN 2 THEN strftime(DATE '2025-01-01' + floor(u(i, 48) * 365)::INT, '%B %-d, %Y')
                WHEN 3 THEN strftime(TIMESTAMP '2025-01-01 09:30:00'
                    + to_days(floor(u(i, 48) * 365)::INT), '%Y-%m-%dT%H:%M:%SZ')
                ELSE (epoch_ms(TIMESTAMP '2025-01-01 14:00:00'
                    + to_days(floor(u(i, 48) * 365)::INT)))::VARCHAR
            END END""",
        "marketing_opt_in": """CASE WHEN u(i, 49) < 0.3 THEN ''
            WHEN u(i, 49) < 0.301 THEN 'maybe'
            ELSE pick(['Yes', 'No', 'yes', 'TRUE', 'false', '1', '0', 'Opted In'], i, 50) END""",
        "notes": "CASE WHEN u(i, 41) < 0.01 THEN pick(notes, i, 42) ELSE '' END",
    }
    values = ", ".join(_quoted(f"({expr})") for expr in fields.values())
    header = ",".join(HEADER)
    con.execute(
        f"""
        CREATE TABLE lines AS
        SELECT i,
               CASE WHEN u(i, 43) < 0.0002 THEN chr(10) ELSE '' END
               || concat_ws(',', {values})
               || CASE WHEN u(i, 44) < 0.0001 THEN ',extra' ELSE '' END AS line
        FROM rows, pools
        """
    )
    text = con.execute(
        "SELECT ? || chr(10) || string_agg(line, chr(10) ORDER BY i) || chr(10) FROM lines",
        [header],
    ).fetchone()[0]
    con.close()
    path.write_text(text, encoding="utf-8")
