import pytest

from gtm_orchestration.lib.config import ConfigError, config_path
from gtm_orchestration.lib.crm_schema import portal_schema
from gtm_orchestration.lib.personas import (
    TitleClassification,
    classify_title,
    default_persona_rules,
    load_persona_rules,
)

CONTACT = portal_schema().objects["contacts"].properties


@pytest.mark.parametrize(
    ("title", "function", "seniority", "persona"),
    [
        # the persona classification example: three spellings, one persona
        ("VP of Marketing", "marketing", "vp", "Marketing Leader"),
        ("VP Marketing", "marketing", "vp", "Marketing Leader"),
        ("Vice President, Marketing", "marketing", "vp", "Marketing Leader"),
        ("V.P. Marketing", "marketing", "vp", "Marketing Leader"),
        ("CMO", "marketing", "c_level", "Marketing Leader"),
        ("Chief Marketing Officer", "marketing", "c_level", "Marketing Leader"),
        ("Founder & CEO", "general_management", "c_level", "Executive"),
        ("Co-Founder & CTO", "engineering", "c_level", "Engineering Leader"),
        ("COO", "general_management", "c_level", "Executive"),
        ("President", "general_management", "c_level", "Executive"),
        ("Managing Director", "general_management", "c_level", "Executive"),
        ("Owner", "general_management", "c_level", "Executive"),
        ("CFO", "finance", "c_level", "Finance Leader"),
        ("Chief Revenue Officer", "sales", "c_level", "Sales Leader"),
        ("CISO", "information_technology", "c_level", "IT Leader"),
        ("Chief Happiness Officer", "other", "c_level", "Executive"),
        ("Sr. Dir. Demand Gen", "marketing", "director", "Marketing Leader"),
        ("Director of Product Marketing", "marketing", "director", "Marketing Leader"),
        ("SVP, Sales", "sales", "vp", "Sales Leader"),
        ("VP Sales & Marketing", "sales", "vp", "Sales Leader"),
        ("Head of RevOps", "operations", "director", "RevOps"),
        ("Marketing Operations Manager", "operations", "manager", "RevOps"),
        ("Salesforce Administrator", "operations", "individual_contributor", "RevOps"),
        ("VP Eng", "engineering", "vp", "Engineering Leader"),
        ("Head of People", "human_resources", "director", "HR Leader"),
        ("Marketing @ Acme | ex-Google", "marketing", "unknown", "Marketing Practitioner"),
        ("VP Sales at Initech", "sales", "vp", "Sales Leader"),
        ("Account Executive", "sales", "individual_contributor", "Sales Practitioner"),
        ("Senior Account Executive", "sales", "individual_contributor", "Sales Practitioner"),
        ("SDR", "sales", "individual_contributor", "Sales Practitioner"),
        ("BDR", "sales", "individual_contributor", "Sales Practitioner"),
        ("Sales Engineer", "sales", "individual_contributor", "Sales Practitioner"),
        ("Account Manager", "sales", "manager", "Sales Practitioner"),
        ("Software Engineer", "engineering", "individual_contributor", "Engineering Practitioner"),
        ("Lead Engineer", "engineering", "individual_contributor", "Engineering Practitioner"),
        ("Engineering Manager", "engineering", "manager", "Engineering Practitioner"),
        ("Marketing Lead", "marketing", "manager", "Marketing Practitioner"),
        (
            "Customer Success Manager",
            "customer_success",
            "manager",
            "Customer Success Practitioner",
        ),
        (
            "Technical Account Manager",
            "customer_success",
            "manager",
            "Customer Success Practitioner",
        ),
        ("Product Owner", "product", "individual_contributor", "Product Practitioner"),
        ("Senior Product Manager", "product", "manager", "Product Practitioner"),
        ("UX Designer", "product", "individual_contributor", "Product Practitioner"),
        ("IT Manager", "information_technology", "manager", "IT Practitioner"),
        ("FP&A Analyst", "finance", "individual_contributor", "Finance Practitioner"),
        ("Technical Recruiter", "human_resources", "individual_contributor", "HR Practitioner"),
        ("General Counsel", "legal", "c_level", "Legal Leader"),
        (
            "Executive Assistant to the CEO",
            "operations",
            "individual_contributor",
            "Operations Practitioner",
        ),
        ("Director", "other", "director", "Business Leader"),
        ("Intern", "other", "individual_contributor", "Other"),
        # German, French and Spanish
        ("Leiter Vertrieb", "sales", "director", "Sales Leader"),
        ("Vertriebsleiter", "sales", "director", "Sales Leader"),
        ("Teamleiter Vertrieb", "sales", "manager", "Sales Practitioner"),
        ("Geschäftsführer", "general_management", "c_level", "Executive"),
        ("Vizepräsident Marketing", "marketing", "vp", "Marketing Leader"),
        ("Personalleiterin", "human_resources", "director", "HR Leader"),
        ("Directeur Marketing", "marketing", "director", "Marketing Leader"),
        ("Directeur Général", "general_management", "c_level", "Executive"),
        ("Responsable Marketing", "marketing", "manager", "Marketing Practitioner"),
        ("Ingénieur logiciel", "engineering", "individual_contributor", "Engineering Practitioner"),
        ("Gerente de Ventas", "sales", "manager", "Sales Practitioner"),
        ("Director Comercial", "sales", "director", "Sales Leader"),
        ("Directora de Recursos Humanos", "human_resources", "director", "HR Leader"),
        ("Ejecutivo de Cuentas", "sales", "individual_contributor", "Sales Practitioner"),
    ],
)
def test_classify_title(title, function, seniority, persona):
    result = classify_title(title)
    assert (result.function, result.seniority, result.persona) == (function, seniority, persona)


@pytest.mark.parametrize("title", [None, "", "   ", "asdf qwerty", "-", "@ Acme", "???"])
def test_unrecognised_titles(title):
    assert classify_title(title) == TitleClassification("other", "unknown", "Unknown", "none")


def test_rule_names_what_fired():
    assert (
        classify_title("VP of Marketing").rule == "seniority:vp;function:marketing;persona:leader"
    )
    assert classify_title("Head of RevOps").rule == (
        "seniority:director;function:operations;persona:revops"
    )
    assert classify_title("Marketing @ Acme").rule == "function:marketing;persona:practitioner"


def test_classifications_are_crm_options():
    titles = ["CEO", "VP Marketing", "Director", "Intern", "Head of IT", "nothing", "Paralegal"]
    for title in titles:
        result = classify_title(title)
        assert result.function in CONTACT["gtm_function"].options
        assert result.seniority in CONTACT["gtm_seniority"].options


def test_case_punctuation_and_accents_do_not_matter():
    base = classify_title("Vice President, Marketing")
    for variant in [
        "VICE PRESIDENT MARKETING",
        "vice-president  marketing",
        "Vice Président: Marketing",
    ]:
        assert classify_title(variant) == base


def test_normalized_title():
    rules = default_persona_rules()
    assert (
        rules.normalize_title("Sr. Dir. Demand Gen @ Acme") == "senior director demand generation"
    )


def _write_rules(tmp_path, old: str, new: str):
    text = config_path("personas.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "personas.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_custom_rules(tmp_path):
    path = _write_rules(
        tmp_path,
        "  marketing: {leader: Marketing Leader,",
        "  marketing: {leader: Marketing Decision Maker,",
    )
    rules = load_persona_rules(path)
    assert classify_title("VP Marketing", rules).persona == "Marketing Decision Maker"
    assert classify_title("VP Marketing").persona == "Marketing Leader"


def test_bad_function_in_rules(tmp_path):
    path = _write_rules(tmp_path, "  - function: legal\n", "  - function: lawyering\n")
    with pytest.raises(ConfigError) as error:
        load_persona_rules(path)
    message = str(error.value)
    assert str(path) in message
    assert "functions[" in message and ".function" in message
    assert "lawyering" in message


def test_bad_regex_in_rules(tmp_path):
    path = _write_rules(tmp_path, "patterns: ['\\brechts\\w*']", "patterns: ['(rechts']")
    with pytest.raises(ConfigError, match=r"patterns\[0\]: .*regular expression"):
        load_persona_rules(path)


def test_persona_table_must_cover_every_function(tmp_path):
    path = _write_rules(
        tmp_path,
        "  legal: {leader: Legal Leader, practitioner: Legal Practitioner}\n",
        "",
    )
    with pytest.raises(ConfigError, match="personas: expected an entry for the function 'legal'"):
        load_persona_rules(path)
