"""Text normalization: spell out numbers the model would otherwise have to guess at.

    normalize("It costs $12.50, 15% off, on 2024-03-05.", "english")
    -> "It costs twelve dollars, fifty cents, fifteen percent off, on March fifth, twenty twenty-four."

Handled, per language (num2words for en de es fr it pt ru ja ko; a small converter for zh):
currency ($ € £ ¥ ₩ before or after the number), percentages, English ordinals (1st 2nd 3rd 4th)
and French/Spanish/Italian/Portuguese ones (1er 2e 1º 1ª), English years (1100-2099 read as years
when they stand alone), ISO dates (English), decimals, thousands separators, negatives, plain
integers. Anything ambiguous (phone numbers, versions like 1.2.3, very long digit runs, times)
is left as written: the model reads digits reasonably on its own.

`language` is a Qwen language name ("english", ...), an ISO code ("en", ...), or "auto": the
script decides (Kana -> japanese, Hangul -> korean, Han -> chinese, Cyrillic -> russian, else english).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

LANG_CODES = {
    "english": "en", "german": "de", "spanish": "es", "chinese": "zh", "japanese": "ja",
    "french": "fr", "korean": "ko", "russian": "ru", "italian": "it", "portuguese": "pt",
    # dialects of chinese read numbers like chinese
    "sichuan_dialect": "zh", "beijing_dialect": "zh",
}

# Decimal comma languages: "3,14" is a decimal and "1.000" groups thousands.
_DECIMAL_COMMA = {"de", "es", "fr", "it", "pt", "ru"}

_PERCENT = {
    "en": "percent", "de": "Prozent", "es": "por ciento", "fr": "pour cent", "it": "per cento",
    "pt": "por cento", "ru": "процентов", "ja": "パーセント", "ko": "퍼센트",
}

_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₩": "KRW"}  # ¥: yen, but 元 in Chinese text
# Words for languages where num2words has no currency (or none for this code): amount + word.
_CURRENCY_WORDS = {
    "zh": {"USD": "美元", "EUR": "欧元", "GBP": "英镑", "JPY": "元", "KRW": "韩元"},
    "ja": {"USD": "ドル", "EUR": "ユーロ", "GBP": "ポンド", "JPY": "円", "KRW": "ウォン"},
    "ko": {"USD": "달러", "EUR": "유로", "GBP": "파운드", "JPY": "엔", "KRW": "원"},
}

_MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]

_MAX_DIGITS = 15  # longer digit runs (ids, card numbers) are left alone


def detect_language(text: str) -> str:
    """Rough script-based guess: japanese, korean, chinese, russian or english."""
    kana = hangul = han = cyr = 0
    for ch in text:
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
            kana += 1
        elif 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
            hangul += 1
        elif 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
            han += 1
        elif 0x0400 <= o <= 0x04FF:
            cyr += 1
    if kana:
        return "japanese"
    if hangul and hangul >= han:
        return "korean"
    if han:
        return "chinese"
    if cyr:
        return "russian"
    return "english"


def language_code(language: str | None, text: str = "") -> str | None:
    """ISO code for a Qwen language name / ISO code / "auto"; None if unsupported."""
    if not language or language.lower() == "auto":
        language = detect_language(text)
    lang = language.lower()
    if lang in LANG_CODES:
        return LANG_CODES[lang]
    if lang in LANG_CODES.values():
        return lang
    return None


# ---------------------------------------------------------------------------------------------
# Chinese numbers (num2words has no 'zh')

_ZH_DIGITS = "零一二三四五六七八九"


def _zh_under_10000(n: int) -> str:
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _ZH_DIGITS[d] + unit
    return out


def zh_cardinal(n: int) -> str:
    if n < 0:
        return "负" + zh_cardinal(-n)
    if n == 0:
        return "零"
    groups = []  # 10^4 groups, least significant first
    while n:
        groups.append(n % 10000)
        n //= 10000
    units = ["", "万", "亿", "万亿"]
    out, gap = "", False
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            gap = bool(out)
            continue
        if out and (gap or g < 1000):  # 10005 -> 一万零五
            out += "零"
        gap = False
        out += _zh_under_10000(g) + units[i]
    if out.startswith("一十"):  # 10-19 read as 十, 十一, ...
        out = out[1:]
    return out


def _zh_number(value: Decimal) -> str:
    sign = "负" if value < 0 else ""
    value = abs(value)
    text = format(value, "f")
    whole, _, frac = text.partition(".")
    out = sign + zh_cardinal(int(whole))
    if frac:
        out += "点" + "".join(_ZH_DIGITS[int(d)] for d in frac)
    return out


# ---------------------------------------------------------------------------------------------
# num2words wrappers; every helper returns None when it cannot say the thing for sure

def _n2w(value, lang: str, **kw) -> str | None:
    from num2words import num2words
    try:
        return num2words(value, lang=lang, **kw)
    except (NotImplementedError, OverflowError, KeyError, TypeError, ValueError, IndexError):
        return None


def _number(value: Decimal, lang: str) -> str | None:
    if lang == "zh":
        return _zh_number(value)
    if value == value.to_integral_value():
        return _n2w(int(value), lang)
    return _n2w(value, lang)


def _currency(amount: Decimal, code: str, lang: str) -> str | None:
    if lang in _CURRENCY_WORDS:
        num = _number(amount.normalize() if amount % 1 else amount, lang)  # 12.50 -> 12.5
        return None if num is None else num + ("" if lang != "ko" else " ") + _CURRENCY_WORDS[lang][code]
    from num2words import CONVERTER_CLASSES
    conv = CONVERTER_CLASSES.get(lang)
    if conv is None:
        return None
    if amount == amount.to_integral_value():  # "$3" -> "three dollars", not "..., zero cents"
        n = int(amount)
        try:
            forms = conv.CURRENCY_FORMS[code][0]
            return f"{conv.to_cardinal(n)} {conv.pluralize(n, forms)}"
        except (NotImplementedError, KeyError, AttributeError, TypeError, IndexError):
            return None
    return _n2w(amount, lang, to="currency", currency=code)


def _parse(num: str, lang: str) -> Decimal | None:
    """'1,234.5' (en) / '1.234,5' (de) -> Decimal; None for anything else."""
    group, point = (".", ",") if lang in _DECIMAL_COMMA else (",", ".")
    if group in num:
        head, *rest = num.split(point)[0].split(group)
        if not (1 <= len(head) <= 3 and all(len(r) == 3 for r in rest)):
            return None
    num = num.replace(group, "").replace(point, ".")
    if num.count(".") > 1 or len(num.replace(".", "")) > _MAX_DIGITS:
        return None
    try:
        return Decimal(num)
    except InvalidOperation:
        return None


_NUM = r"\d[\d.,]*\d|\d"
# "word" characters that glue to a number (Latin, Cyrillic, digits); CJK characters do not:
# "共10005人" has a number, "A4" or "x86" does not.
_W = r"0-9A-Za-z_\u00C0-\u024F\u0400-\u04FF"
_SYM = "".join(re.escape(s) for s in _CURRENCY_SYMBOLS)
_CUR_BEFORE = re.compile(rf"(?<![{_W}.,])(-?)([{_SYM}])\s?({_NUM})(?![\d])")
_CUR_AFTER = re.compile(rf"(?<![{_W}.,])(-?)({_NUM})\s?([{_SYM}])")
_PCT = re.compile(rf"(?<![{_W}.,])(-?)({_NUM})\s?%")
_ORD_EN = re.compile(rf"(?<![{_W}.,])(\d{{1,9}})(st|nd|rd|th)\b", re.IGNORECASE)
_ORD_ROMANCE = re.compile(rf"(?<![{_W}.,])(\d{{1,9}})(er|re|e|ème|º|ª|°)(?!\w)")
_SPACE_GROUPS = re.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d])")
_NBSP_GROUPS = re.compile(r"(?<![\d.,])\d{1,3}(?:[\u00a0\u202f]\d{3})+(?![\d])")
_ISO_DATE = re.compile(r"(?<![\w.,-])(\d{4})-(\d{2})-(\d{2})(?![\w-])")
_YEAR_EN = re.compile(r"(?<![\w.,$€£¥-])(1[1-9]\d\d|20\d\d)(s?)(?![\w.,]?\d|%)")
_PLAIN = re.compile(rf"(?<![{_W}.,:/-])(-?)({_NUM})(?![{_W}:/]|[.,-]\d)")


def normalize(text: str, language: str | None = "auto") -> str:
    """Spell out numbers, currency, percentages, ordinals, years and ISO dates."""
    lang = language_code(language, text)
    if lang is None or not any(c.isdigit() for c in text):
        return text

    if lang in ("fr", "ru"):  # "1 500" / "1\u202f500": space-grouped thousands
        text = _SPACE_GROUPS.sub(lambda m: re.sub(r"[ \u00a0\u202f]", "", m.group(0)), text)
    elif lang in _DECIMAL_COMMA:
        text = _NBSP_GROUPS.sub(lambda m: re.sub(r"[\u00a0\u202f]", "", m.group(0)), text)

    def cur(m, sym_group, num_group):
        amount = _parse(m.group(num_group), lang)
        if amount is None:
            return m.group(0)
        if m.group(1):
            amount = -amount
        s = _currency(amount, _CURRENCY_SYMBOLS[m.group(sym_group)], lang)
        return m.group(0) if s is None else s

    text = _CUR_BEFORE.sub(lambda m: cur(m, 2, 3), text)
    text = _CUR_AFTER.sub(lambda m: cur(m, 3, 2), text)

    def pct(m):
        value = _parse(m.group(2), lang)
        if value is None:
            return m.group(0)
        if m.group(1):
            value = -value
        num = _number(value, lang)
        if num is None:
            return m.group(0)
        if lang == "zh":
            return "百分之" + num
        return f"{num} {_PERCENT[lang]}"

    text = _PCT.sub(pct, text)

    if lang == "en":
        def iso(m):
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if not (1 <= mo <= 12 and 1 <= d <= 31):
                return m.group(0)
            return f"{_MONTHS_EN[mo - 1]} {_n2w(d, 'en', to='ordinal')}, {_n2w(y, 'en', to='year')}"

        text = _ISO_DATE.sub(iso, text)
        text = _ORD_EN.sub(lambda m: _n2w(int(m.group(1)), "en", to="ordinal") or m.group(0), text)

        def year(m):
            s = _n2w(int(m.group(1)), "en", to="year")
            if s is None:
                return m.group(0)
            if m.group(2):  # 1990s -> nineteen nineties
                s = s[:-1] + "ies" if s.endswith("y") else s + "s"
            return s

        text = _YEAR_EN.sub(year, text)
    elif lang in ("fr", "es", "it", "pt"):
        def ordinal(m):
            suffix = m.group(2)
            if lang == "fr" and suffix not in ("er", "re", "e", "ème"):
                return m.group(0)
            if lang != "fr" and suffix not in ("º", "ª", "°"):
                return m.group(0)
            s = _n2w(int(m.group(1)), lang, to="ordinal")
            if s is None:
                return m.group(0)
            if suffix in ("ª", "re") and s.endswith("o"):  # feminine
                s = s[:-1] + "a"
            elif suffix == "re" and s == "premier":
                s = "première"
            return s

        text = _ORD_ROMANCE.sub(ordinal, text)

    def plain(m):
        raw = m.group(2)
        value = _parse(raw, lang)
        if value is None:
            return m.group(0)
        if m.group(1):
            value = -value
        s = _number(value, lang)
        return m.group(0) if s is None else s

    return _PLAIN.sub(plain, text)
