"""Text normalization and sentence chunking."""
import pytest

from edgetts.text.chunk import chunk_text, split_sentences, text_len
from edgetts.text.normalize import detect_language, language_code, normalize, zh_cardinal


@pytest.mark.parametrize("text,lang,want", [
    ("It costs $12.50 now.", "english", "It costs twelve dollars, fifty cents now."),
    ("$3 and €1,000", "en", "three dollars and one thousand euro"),
    ("15% off", "en", "fifteen percent off"),
    ("She came 21st and 2nd.", "en", "She came twenty-first and second."),
    ("Born in 1990, in the 1980s.", "en", "Born in nineteen ninety, in the nineteen eighties."),
    ("On 2024-03-05.", "en", "On March fifth, twenty twenty-four."),
    ("Pi is 3.14 and -5 is cold", "en", "Pi is three point one four and minus five is cold"),
    ("300,000 people", "en", "three hundred thousand people"),
    ("Es kostet 12,50 € und 1.000 Leute, 3,5%", "de",
     "Es kostet zwölf Euro und fünfzig Cent und eintausend Leute, drei Komma fünf Prozent"),
    ("Le 1er et la 2e fois, 25 %", "fr", "Le premier et la deuxième fois, vingt-cinq pour cent"),
    ("El 1º y la 2ª", "es", "El primero y la segunda"),
    ("Это стоит 1 500 рублей", "auto", "Это стоит одна тысяча пятьсот рублей"),
    ("价格是$12.50，增长了15%，共10005人", "auto", "价格是十二点五美元，增长了百分之十五，共一万零五人"),
    ("値段は1990円です", "auto", "値段は千九百九十円です"),
])
def test_normalize(text, lang, want):
    assert normalize(text, lang) == want


@pytest.mark.parametrize("text", [
    "Call 555-1234 at 10:30.", "version 1.2.3", "A4 paper, x86 and mp3", "id 12345678901234567890",
    "no digits here", "",
])
def test_normalize_leaves_unsure_text(text):
    assert normalize(text, "english") == text


def test_normalize_unknown_language_is_identity():
    assert normalize("I have 3 cats", "klingon") == "I have 3 cats"


def test_detect_language():
    assert detect_language("Hello there") == "english"
    assert detect_language("今天天气很好") == "chinese"
    assert detect_language("今日はいい天気です") == "japanese"
    assert detect_language("안녕하세요") == "korean"
    assert detect_language("Привет") == "russian"
    assert language_code("German") == "de" and language_code("auto", "Привет") == "ru"
    assert language_code("pt") == "pt"


def test_zh_cardinal():
    got = [zh_cardinal(n) for n in (0, 10, 15, 105, 1005, 10005, 100000, 123456789, 100000005)]
    assert got == ["零", "十", "十五", "一百零五", "一千零五", "一万零五", "十万",
                   "一亿二千三百四十五万六千七百八十九", "一亿零五"]


def test_split_sentences_abbreviations_and_numbers():
    text = ('Dr. Smith paid $3.14. He left! Did he? Yes, e.g. apples etc. and more. '
            'J. R. R. Tolkien wrote it. The U.S. Army came. "Stop." She said.')
    assert split_sentences(text) == [
        "Dr. Smith paid $3.14.", "He left!", "Did he?", "Yes, e.g. apples etc. and more.",
        "J. R. R. Tolkien wrote it.", "The U.S. Army came.", '"Stop."', "She said."]


def test_split_sentences_cjk_and_lines():
    assert split_sentences("今天天气很好。我们去公园吧！你呢？好；走吧") == [
        "今天天气很好。", "我们去公园吧！", "你呢？", "好；", "走吧"]
    assert split_sentences("Hello world...   Next one\nNew line") == [
        "Hello world...", "Next one", "New line"]


def test_chunk_groups_short_sentences():
    assert chunk_text("One. Two. Three.", max_len=100) == ["One. Two. Three."]
    assert chunk_text("One. Two. Three.", max_len=9) == ["One. Two.", "Three."]


def test_chunk_splits_long_sentences_within_limit():
    for text, limit in [("word " * 100, 50), ("这是一个非常长的句子，没有句号，但是有很多逗号，应该分开，对吧", 30),
                        ("a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p", 10)]:
        chunks = chunk_text(text, max_len=limit)
        assert all(text_len(c) <= limit for c in chunks), chunks
        assert "".join(chunks).replace(" ", "") == text.replace(" ", "")


def test_text_len_weights_cjk():
    assert text_len("abc") == 3 and text_len("你好") == 6


def test_chunk_empty():
    assert chunk_text("   \n  ") == []
