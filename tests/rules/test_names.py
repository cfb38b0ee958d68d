import unicodedata

import pytest
from hypothesis import given, strategies as st

from rules.names import normalize_name


def test_none_is_empty():
    assert normalize_name(None) == ""


@pytest.mark.parametrize("raw", ["Иванов", "ИВАНОВ", "иванов", "  Иванов ", "\tиВаНоВ\u00a0"])
def test_case_and_surrounding_space(raw):
    assert normalize_name(raw) == "иванов"


@pytest.mark.parametrize("a, b", [
    ("Пётр", "Петр"),
    ("СЕМЁНОВ", "Семенов"),
    ("Ёлкин", "елкин"),
    ("Пе\u0308тр", "Петр"),  # decomposed ё
    ("Пе\u0308\u0308тр", "Петр"),  # stray extra diaeresis would recompose into ё
])
def test_yo_equals_ye(a, b):
    assert normalize_name(a) == normalize_name(b)
    assert "ё" not in normalize_name(a)


@pytest.mark.parametrize("kazakh, russian", [
    ("Айгүл", "Айгуль"),
    ("Айгүл", "Айгул"),
    ("Әлия", "Алия"),
    ("Ғалым", "Галым"),
    ("Қайрат", "Кайрат"),
    ("Жаңыл", "Жаныл"),
    ("Өмір", "Омир"),
    ("Ұлан", "Улан"),
    ("Һашим", "Хашим"),
    ("Ілияс", "Илияс"),
    ("Ілияс", "Iлияс"),  # Latin I lookalike is a different letter too
])
def test_kazakh_letters_stay_distinct(kazakh, russian):
    assert normalize_name(kazakh) != normalize_name(russian)


def test_kazakh_letters_case_fold_to_themselves():
    assert normalize_name("ӘҒҚҢӨҰҮҺІ") == "әғқңөұүһі"


@pytest.mark.parametrize("name", ["Йорданов", "Zoë Ёлкина", "Ӛлия", "Ӯсенов", "Nguyễn Đức", "Kokić"])
def test_nfd_input_equals_nfc_input(name):
    nfd = unicodedata.normalize("NFD", name)
    assert nfd != unicodedata.normalize("NFC", name)  # the test really feeds two spellings
    assert normalize_name(nfd) == normalize_name(name)
    assert unicodedata.is_normalized("NFC", normalize_name(nfd))


@pytest.mark.parametrize("raw", ["Анна  Мария", "Анна\tМария", "Анна \u00a0\n Мария", " Анна Мария  "])
def test_inner_whitespace_collapsed(raw):
    assert normalize_name(raw) == "анна мария"


def test_casefold_not_just_lower():
    assert normalize_name("STRASSE") == normalize_name("Straße")


@given(st.text(max_size=30))
def test_canonically_equivalent_inputs_agree(text):
    n = normalize_name(text)
    assert normalize_name(unicodedata.normalize("NFD", text)) == n
    assert normalize_name(unicodedata.normalize("NFC", text)) == n


@given(st.text(max_size=30))
def test_idempotent_and_clean(text):
    n = normalize_name(text)
    assert normalize_name(n) == n
    assert n == n.strip() and "  " not in n and "ё" not in n
    assert unicodedata.is_normalized("NFC", n)
