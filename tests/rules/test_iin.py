import pytest
from hypothesis import given, strategies as st

from rules.iin import check_digit, is_valid_iin, mask_iin

# Copied from shared/examples/iin-vectors.json (the project must not read shared/ at test time).
VALID = [
    "870314312348",  # 1987-03-14 M
    "921102423450",  # 1992-11-02 F
    "010630534571",  # 2001-06-30 M
    "040109645673",  # 2004-01-09 F
    "581225356784",  # 1958-12-25 M
    "900505300407",  # 1990-05-05 M, first pass gives 10, second pass decides
]
INVALID = [
    "870314312349",  # check digit off by one
    "900505401900",  # both passes give 10: never issued, whatever the last digit
    "87031431234",  # 11 digits
    "870314A12348",  # not all digits
]

digits11 = st.text(alphabet="0123456789", min_size=11, max_size=11)


def reference_check_digit(first11):
    """Straight transcription of domain.md, independent of the optimised code."""
    d = [int(c) for c in first11]
    r = sum(w * x for w, x in zip(range(1, 12), d)) % 11
    if r == 10:
        r = sum(w * x for w, x in zip([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2], d)) % 11
        if r == 10:
            return None
    return r


@pytest.mark.parametrize("iin", VALID)
def test_valid_vectors(iin):
    assert is_valid_iin(iin)
    assert check_digit(iin[:11]) == int(iin[11])


@pytest.mark.parametrize("iin", INVALID)
def test_invalid_vectors(iin):
    assert not is_valid_iin(iin)


def test_second_pass_vector_really_needs_the_second_pass():
    first = sum(w * int(c) for w, c in zip(range(1, 12), "90050530040")) % 11
    assert first == 10
    assert check_digit("90050530040") == 7


def test_never_issued_has_no_valid_last_digit():
    assert check_digit("90050540190") is None
    assert not any(is_valid_iin("90050540190" + str(k)) for k in range(10))


@given(digits11)
def test_check_digit_matches_reference(first11):
    assert check_digit(first11) == reference_check_digit(first11)


@given(digits11)
def test_exactly_one_last_digit_is_valid(first11):
    cd = check_digit(first11)
    valid = [k for k in range(10) if is_valid_iin(first11 + str(k))]
    if cd is None:
        assert valid == []
    else:
        assert valid == [cd]


@pytest.mark.parametrize("value", [
    870314312348,  # a number, not a string
    b"870314312348",
    None,
    " 870314312348",
    "870314312348\n",
    "８７０３１４３１２３４８",  # full-width digits
    "٨٧٠٣١٤٣١٢٣٤٨",  # Arabic-Indic digits: str.isdigit() says True
    "87031431234８",
    "",
    "8703143123480",
])
def test_not_an_iin(value):
    assert not is_valid_iin(value)


@pytest.mark.parametrize("value", ["8703143123", "870314A1234", "٨٧٠٣١٤٣١٢٣٤", None, 87031431234])
def test_check_digit_rejects_malformed_input(value):
    with pytest.raises(ValueError):
        check_digit(value)


@pytest.mark.parametrize("value, masked", [
    ("870314312348", "87******2348"),
    ("870314A12348", "87******2348"),
    (870314312348, "87******2348"),
    ("87031431234", "87*******34"),
    ("8703143123489", "87*********89"),
    ("12345678", "12****78"),
    ("1234567", "1*****7"),
    ("1234", "1**4"),
    ("123", "***"),
    ("", ""),
    (None, "<none>"),
    ({"iin": "870314312348"}, "<dict>"),
])
def test_mask(value, masked):
    assert mask_iin(value) == masked


@given(st.text(alphabet=st.characters(blacklist_characters="*"), max_size=40))
def test_mask_never_reveals_much(value):
    masked = mask_iin(value)
    assert len(masked) == len(value)
    shown = [i for i, c in enumerate(masked) if c != "*"]
    assert all(masked[i] == value[i] for i in shown)
    assert len(shown) <= (6 if len(value) == 12 else 4)
    assert len(shown) <= len(value) // 2
