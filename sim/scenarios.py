"""The real deployments as scenarios: carriers, schools, sites, devices at their real counts, faults over time.

Each scenario is data (no I/O): who supports whom, every school with its sites (a Dependance is
a second site of the same school, with its own server and agent), tablets per cabinet, APs,
AirPlay receivers and printers per site, the faults active from the start and a timeline of
faults that switch on and off while the demo runs. ``schulwart-sim demo --scenario NAME`` plays
one; ``--scenario list`` prints :func:`describe` for each.

Published sizes are kept exactly (tablets, cabinets, schools, carriers). What the sources do not
give (school names, APs, receivers, how tablets spread over cabinets) is filled in plausibly
and deterministically, so every run of a scenario is the same school landscape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Site keys end up in mDNS instance names ("<MAC>@Lehrerzimmer Apple TV <key>-<n>"), which may
# have at most 63 bytes.
MAX_KEY_LENGTH = 24
# A site's WLAN: one AP per class with tablets plus the staff room and the hall.
_EXTRA_APS = 2
# The uplink of a silent school is cut for this long: longer than the silent window the scenario
# gives central, so that central raises "agent silent" and resolves it again.
_SILENT_FOR_S = 150.0  # central's silent window in a scenario is 90 s, its check every 10 s


class ScenarioError(ValueError):
    """A scenario name the simulator does not know."""


@dataclass(frozen=True)
class Site:
    """One school site: one school server, one agent, one simulated network.

    ``key`` is unique in the scenario (the school id, or the school id plus a suffix for a
    Dependance) and names the site's directories and namespace; ``school_id`` is the school at
    central. ``tablets`` are spread over ``cabinets`` charging cabinets; ``take_home`` says the
    tablets go home with the pupils (1:1), so their absence outside school hours is normal.
    """

    key: str
    school_id: str
    name: str
    tablets: int
    cabinets: int
    aps: int
    receivers: int
    printers: int
    take_home: bool = False


@dataclass(frozen=True)
class SchoolPlan:
    """A school at central: id, name, carrier and its sites (the first is the main site)."""

    id: str
    name: str
    carrier: str
    sites: tuple[Site, ...]


@dataclass(frozen=True)
class FaultStep:
    """At ``at_s`` seconds into each timeline cycle, switch ``fault`` at site ``site`` on or off.

    ``fault`` is a sim fault (``ap-down:1``) or ``uplink-down``: the site loses its route to
    central (its agent keeps working offline and catches up afterwards: a silent school).
    """

    at_s: float
    site: str
    fault: str
    active: bool


@dataclass(frozen=True)
class Scenario:
    """A whole deployment: its schools and the faults that happen in it.

    ``start_faults`` maps site keys to faults active from the start (a cabinet without power
    opens its incident only inside its charging window, 15:00-07:00: overnight);
    ``timeline`` repeats every ``cycle_s`` seconds after every agent is up.
    """

    name: str
    who: str
    source_size: str
    schools: tuple[SchoolPlan, ...]
    start_faults: dict[str, tuple[str, ...]] = field(default_factory=dict)
    timeline: tuple[FaultStep, ...] = ()
    cycle_s: float = 600.0

    @property
    def sites(self) -> list[Site]:
        """Every site, school by school."""
        return [site for school in self.schools for site in school.sites]

    @property
    def carriers(self) -> list[str]:
        """Carrier names in order of first appearance."""
        return list(dict.fromkeys(school.carrier for school in self.schools))

    def school_of(self, site_key: str) -> SchoolPlan:
        """The school a site belongs to; KeyError for an unknown key."""
        for school in self.schools:
            if any(site.key == site_key for site in school.sites):
                return school
        raise KeyError(site_key)

    def totals(self) -> dict[str, int]:
        """Carriers, schools, sites, tablets, cabinets, APs, receivers, printers, take-home sites."""
        sites = self.sites
        return {
            "carriers": len(self.carriers),
            "schools": len(self.schools),
            "sites": len(sites),
            "tablets": sum(s.tablets for s in sites),
            "cabinets": sum(s.cabinets for s in sites),
            "aps": sum(s.aps for s in sites),
            "receivers": sum(s.receivers for s in sites),
            "printers": sum(s.printers for s in sites),
            "take_home_sites": sum(1 for s in sites if s.take_home),
        }


# -- building blocks ---------------------------------------------------------------------------------


def _slug(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", " ": "-", ".": "", ",": "", "/": "-"})
    return "-".join(part for part in text.lower().translate(table).split("-") if part)


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` whole numbers that differ by at most one, larger first.

    ValueError when ``parts`` is not positive.
    """
    if parts <= 0:
        raise ValueError("parts must be positive")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _site(key: str, school_id: str, name: str, tablets: int, cabinets: int, *, printers: int = 1,
          take_home: bool = False) -> Site:  # fmt: skip
    """A site whose WLAN and receivers follow its classes with tablets (one cabinet per class)."""
    return Site(key, school_id, name, tablets, cabinets, aps=cabinets + _EXTRA_APS, receivers=max(1, cabinets),
                printers=printers, take_home=take_home)  # fmt: skip


def _school(sid: str, name: str, carrier: str, sites: Sequence[tuple[str, int, int]], *,
            take_home: bool = False, printers: int = 1) -> SchoolPlan:  # fmt: skip
    """A school with sites given as (suffix, tablets, cabinets); suffix '' is the main site."""
    built = []
    for suffix, tablets, cabinets in sites:
        key = f"{sid}-{suffix}" if suffix else sid
        site_name = f"{name}, Dependance" if suffix else name
        built.append(_site(key, sid, site_name, tablets, cabinets, printers=printers, take_home=take_home))
    return SchoolPlan(sid, name, carrier, tuple(built))


def _standard_timeline(ap_site: str, silent_site: str) -> tuple[FaultStep, ...]:
    """An AP down for two minutes at one site, a school without uplink for longer than the silent window."""
    return (
        FaultStep(20.0, ap_site, "ap-down:1", True),
        FaultStep(20.0, silent_site, "uplink-down", True),
        FaultStep(140.0, ap_site, "ap-down:1", False),
        FaultStep(20.0 + _SILENT_FOR_S, silent_site, "uplink-down", False),
    )


# -- the four deployments ----------------------------------------------------------------------------


def regionalverband() -> Scenario:
    """A Regionalverband's media centre (LSMS 2.0) for the primary schools of three of its towns."""
    schools = (
        # Püttlingen: 3 sites, 257 tablets.
        _school("gs-puettlingen-nord", "GS Püttlingen-Nord", "Stadt Püttlingen", [("", 86, 5)]),
        _school("gs-puettlingen-mitte", "GS Püttlingen-Mitte", "Stadt Püttlingen", [("", 86, 5)]),
        _school("gs-puettlingen-sued", "GS Püttlingen-Süd", "Stadt Püttlingen", [("", 85, 5)]),
        # Sulzbach: 2 sites, 273 tablets.
        _school("gs-sulzbach-mitte", "GS Sulzbach-Mitte", "Stadt Sulzbach/Saar", [("", 137, 8)]),
        _school("gs-sulzbach-altenwald", "GS Sulzbach-Altenwald", "Stadt Sulzbach/Saar", [("", 136, 8)]),
        # Kleinblittersdorf: 2 schools + 1 Dependance, about 170 tablets.
        _school("gs-kleinblittersdorf", "GS Kleinblittersdorf", "Gemeinde Kleinblittersdorf",
                [("", 64, 4), ("dep", 32, 2)]),
        _school("gs-rilchingen-hanweiler", "GS Rilchingen-Hanweiler", "Gemeinde Kleinblittersdorf", [("", 74, 4)]),
    )  # fmt: skip
    return Scenario(
        name="regionalverband",
        who="a Regionalverband's media centre for the primary schools of its towns (LSMS 2.0): hotline, "
        "on-site visits, device service, WLAN and firewalls",
        source_size="Püttlingen 3 sites with 257 tablets, Sulzbach 2 sites with 273, Kleinblittersdorf 2 schools "
        "+ 1 Dependance with about 170",
        schools=schools,
        start_faults={"gs-sulzbach-mitte": ("cabinet-no-power:3",)},
        timeline=_standard_timeline("gs-puettlingen-nord", "gs-rilchingen-hanweiler"),
    )


# Eight municipalities with their primary schools (grades 3-4 have iPads): schools per municipality
# and which of them have a Dependance. Names are invented; the totals are the published ones.
_LANDKREIS_TOWNS = (
    ("Stadt Altenburg am Main", 8, (2,)),
    ("Stadt Rabenfels", 6, (1,)),
    ("Gemeinde Eichwalde", 5, ()),
    ("Gemeinde Hohenlinden", 4, (3,)),
    ("Gemeinde Wiesbach", 4, ()),
    ("Gemeinde Kiliansberg", 3, ()),
    ("Gemeinde Mühlhausen im Tal", 3, ()),
    ("Gemeinde Kirchheide", 2, ()),
)
_LANDKREIS_TABLETS = 2400
_LANDKREIS_CABINETS = 138
# The three pilot schools whose tablets go home with the pupils (1:1).
_LANDKREIS_PILOTS = ("gs-altenburg-3", "gs-rabenfels-2", "gs-wiesbach-1")
_STREETS = ("Am Markt", "Lindenschule", "Am Park", "Sonnenhof", "Am Bach", "Regenbogen", "Wiesengrund", "Am Wald")


def landkreis() -> Scenario:
    """A Landkreis' school-IT team operating the iPads of grades 3-4 at the primary schools of 8 municipalities."""
    # One cabinet per class with iPads; every site has at least 2 (one class per grade) and the
    # larger towns' schools more, so that the 138 cabinets fall where the classes are.
    slots: list[tuple[str, str, str, str]] = []  # (carrier, school id, school name, site suffix)
    for town, count, with_dependance in _LANDKREIS_TOWNS:
        short = town.split(" ", 1)[1]
        for n in range(1, count + 1):
            sid = f"gs-{_slug(short).split('-')[0]}-{n}"  # short: ids end up in mDNS names (63 bytes)
            name = f"GS {short} {_STREETS[(n - 1) % len(_STREETS)]}"
            slots.append((town, sid, name, ""))
            if n in with_dependance:
                slots.append((town, sid, name, "dep"))
    cabinets = spread(_LANDKREIS_CABINETS, len(slots))
    per_cabinet = spread(_LANDKREIS_TABLETS, _LANDKREIS_CABINETS)
    schools: dict[str, SchoolPlan] = {}
    used = 0
    for (town, sid, name, suffix), count in zip(slots, cabinets, strict=True):
        tablets = sum(per_cabinet[used : used + count])
        used += count
        key = f"{sid}-{suffix}" if suffix else sid
        site_name = f"{name}, Dependance" if suffix else name
        site = _site(key, sid, site_name, tablets, count, take_home=sid in _LANDKREIS_PILOTS)
        old = schools.get(sid)
        schools[sid] = SchoolPlan(sid, name, town, (*old.sites, site) if old else (site,))
    return Scenario(
        name="landkreis",
        who="a Landkreis' school-IT team operating the iPads of the primary schools of 8 municipalities",
        source_size="2,400 iPads in 138 charging cabinets, grades 3-4; at 3 pilot schools the tablets go home "
        "with the pupils (1:1)",
        schools=tuple(schools.values()),
        start_faults={"gs-eichwalde-2": ("cabinet-no-power:2",)},
        timeline=_standard_timeline("gs-altenburg-1", "gs-hohenlinden-1"),
    )


def stadt() -> Scenario:
    """A municipal service company running one town's school IT: 3 primary and 2 regional schools."""
    carrier = "Stadt Neuweiler"
    schools = (
        _school("gs-am-markt", "GS Am Markt", carrier, [("", 64, 4)]),
        _school("gs-lindenschule", "GS Lindenschule", carrier, [("", 48, 3)]),
        _school("gs-am-wald", "GS Am Wald", carrier, [("", 48, 3)]),
        _school("rs-nord", "Regionalschule Nord", carrier, [("", 180, 8)], printers=3),
        _school("rs-am-see", "Regionalschule Am See", carrier, [("", 150, 7)], printers=3),
    )
    return Scenario(
        name="stadt",
        who="a municipal service company running one town's school IT",
        source_size="3 primary + 2 regional schools",
        schools=schools,
        start_faults={"rs-nord": ("cabinet-no-power:4",)},
        timeline=_standard_timeline("rs-am-see", "gs-lindenschule"),
    )


# 14 municipalities and 4 school associations (Schulverbände) with their schools: 18 carriers, 43 schools.
_ZWECKVERBAND_CARRIERS = (
    ("Stadt Bergstedt", 5), ("Stadt Talheim", 4), ("Gemeinde Auenbach", 3), ("Gemeinde Birkenau", 3),
    ("Gemeinde Dornholz", 2), ("Gemeinde Erlenbruch", 2), ("Gemeinde Fichtenau", 2), ("Gemeinde Grünwiese", 2),
    ("Gemeinde Hasental", 2), ("Gemeinde Immenried", 2), ("Gemeinde Kesselbach", 2), ("Gemeinde Lauterhof", 1),
    ("Gemeinde Mooswald", 1), ("Gemeinde Nesselrode", 1),
    ("Schulverband Obertal", 4), ("Schulverband Pfaffenwinkel", 3), ("Schulverband Quellenland", 2),
    ("Schulverband Rosengarten", 2),
)  # fmt: skip
# Tablets per site cycle through these (16 per cabinet): one class set up to a small school's two grades.
_ZWECKVERBAND_SIZES = (32, 16, 48, 32, 24, 64, 16, 32)


def zweckverband() -> Scenario:
    """An inter-municipal data centre supporting the schools of 14 carriers and 4 school associations since 2009."""
    schools = []
    n = 0
    for carrier, count in _ZWECKVERBAND_CARRIERS:
        place = carrier.split(" ", 1)[1]
        for i in range(1, count + 1):
            tablets = _ZWECKVERBAND_SIZES[n % len(_ZWECKVERBAND_SIZES)]
            n += 1
            kind = "GS" if i % 3 else "RS"
            sid = f"{kind.lower()}-{_slug(place)}-{i}"
            name = f"{'GS' if kind == 'GS' else 'Regionalschule'} {place} {_STREETS[(i - 1) % len(_STREETS)]}"
            schools.append(_school(sid, name, carrier, [("", tablets, max(1, -(-tablets // 16)))]))
    return Scenario(
        name="zweckverband",
        who="an inter-municipal data centre supporting schools since 2009",
        source_size="14 carriers and 4 school associations with 43 schools",
        schools=tuple(schools),
        start_faults={"gs-talheim-2": ("cabinet-no-power:1",)},
        timeline=_standard_timeline("gs-bergstedt-1", "gs-auenbach-1"),
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "regionalverband": regionalverband,
    "landkreis": landkreis,
    "stadt": stadt,
    "zweckverband": zweckverband,
}


def get(name: str) -> Scenario:
    """The scenario of this name; ScenarioError naming the known ones otherwise."""
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    return SCENARIOS[name]()


def describe(scenario: Scenario) -> str:
    """One line: name, who, and the simulated totals."""
    t = scenario.totals()
    home = f", {t['take_home_sites']} take-home (1:1) sites" if t["take_home_sites"] else ""
    return (
        f"{scenario.name}\t{t['carriers']} carriers, {t['schools']} schools, {t['sites']} sites, "
        f"{t['tablets']:,} tablets in {t['cabinets']} cabinets, {t['aps']} APs, {t['receivers']} receivers, "
        f"{t['printers']} printers{home}; {2 * t['sites'] + 1} processes\t{scenario.who}"
    )
