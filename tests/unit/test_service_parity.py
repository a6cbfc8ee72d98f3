"""The LibreTranslate-parity pieces without a server: HTML text nodes, the language identifier's policy, keys
and token buckets shared through one SQLite file, file names."""

import multiprocessing

import pytest

from hat_engine.errors import ConfigError
from service import html_text, langid
from service.access import Access, AccessPolicy, Quota, bearer_key, key_id, load_policy, read_keys
from service.errors import ApiError
from service.files import _safe_name


def test_html_keeps_tags_and_drops_everything_that_runs():
    doc = html_text.parse('<div id="a" onclick="x()"><p>The <b>house</b> is small.</p><script>alert(1)</script>'
                          '<!-- note --><img src="javascript:x" alt="pic"><a href="/ok" style="color:red">Go</a>'
                          "<pre>code  here</pre>&amp; more</div>")  # fmt: skip
    assert doc.text_nodes() == ["The", "house", "is small.", "Go", "& more"]
    out = doc.render(["Das", "Haus", "ist klein.", "Los", "& mehr"])
    assert out == ('<div id="a"><p>Das <b>Haus</b> ist klein.</p><img alt="pic"><a href="/ok">Los</a>'
                   "<pre>code  here</pre>&amp; mehr</div>")  # fmt: skip


def test_html_never_echoes_markup_from_text_or_unclosed_scripts():
    doc = html_text.parse("<p>a &lt;script&gt; b</p><style>p{}</style><noscript><b>x</b></noscript><script>open")
    assert doc.render(["<script>alert(1)</script>"]) == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    attribute = html_text.parse('<a title="&quot;><script>">x</a>').render(["y"])
    assert attribute == '<a title="&quot;&gt;&lt;script&gt;">y</a>'


def test_auto_source_takes_short_text_as_english_and_refuses_confident_german():
    assert langid.rank("Das Haus ist klein und die Stadt ist groß.")[0].language == "de"
    assert langid.source_language("Hello").language == "en"  # too short to tell
    assert langid.source_language("The house is small and the city is big.").language == "en"
    assert langid.source_language("Ich liebe dich und das Haus ist klein.").language == "de"
    assert langid.source_language("12345 !!!") == langid.Detection("en", 0.0) and langid.rank("123") == []


def test_keys_file_parses_limits_and_names_bad_lines(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# key rpm cpm\nalpha-key-1 5 100\nbeta-key-22\ngamma-key-3 - 50  # chars only\n")
    keys = read_keys(path)
    assert sorted(keys.values(), key=str) == sorted([Quota(5, 100), Quota(), Quota(None, 50)], key=str)
    assert "alpha-key-1" not in repr(keys) and key_id("alpha-key-1").startswith("k-") and len(key_id("x")) == 12
    for text, words in (("short 1\n", "8 characters"), ("alpha-key-1 0\n", "line 1"), ("alpha-key-1\nalpha-key-1\n",
                        "twice"), ("", "no key"), ("alpha-key-1 1 2 3\n", "fields")):  # fmt: skip
        path.write_text(text)
        with pytest.raises(ConfigError, match=words):
            read_keys(path)
    assert not load_policy({}, tmp_path).active and load_policy({"HAT_REQ_LIMIT": "3"}, tmp_path).active
    assert bearer_key({"authorization": "Bearer abc "}) == "abc" and bearer_key({"authorization": "Basic x"}) is None


def _status(access, key, chars=1):
    try:
        access.check(key, "127.0.0.1", chars)
    except ApiError as exc:
        return exc.status, exc.headers.get("Retry-After")
    return 200, None


def test_key_limits_hold_across_instances_sharing_the_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("alpha-key-1 3\nbeta-key-22 - 10\n")
    policy = AccessPolicy(read_keys(path), Quota(), tmp_path / "db.sqlite")
    workers = [Access(policy), Access(policy)]  # two workers: one file, one set of buckets
    assert [_status(workers[i % 2], "alpha-key-1")[0] for i in range(5)] == [200, 200, 200, 429, 429]
    status, retry = _status(workers[0], "alpha-key-1")
    assert status == 429 and 1 <= int(retry) <= 20
    assert _status(workers[1], "beta-key-22", 6)[0] == 200 and _status(workers[0], "beta-key-22", 6)[0] == 429
    assert _status(workers[0], "beta-key-22", 11)[0] == 413  # more than a minute's worth: never passes
    assert _status(workers[0], None)[0] == 403 and _status(workers[0], "wrong-key-1")[0] == 403
    assert workers[0].label("alpha-key-1") == key_id("alpha-key-1") and workers[0].label("nope") == "unknown"


def _burst(db, n, queue):
    access = Access(AccessPolicy(None, Quota(20, None), db))
    queue.put([_status(access, None)[0] for _ in range(n)])


def test_anonymous_limit_holds_across_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_burst, args=(tmp_path / "db.sqlite", 15, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    statuses = [s for _ in procs for s in queue.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert statuses.count(200) == 20 and statuses.count(429) == 10


def test_safe_file_names():
    assert _safe_name("../../etc/passwd") == "passwd" and _safe_name("a b?.TXT") == "a_b_.TXT"
    assert _safe_name("C:\\x\\notes.txt") == "notes.txt" and _safe_name("...") == "file"
