from tests.transforms.dedup.stories import STORY, reuters_stories, story
from wirestream.transforms.dedup import DedupSettings, cluster_records


def test_templated_stories_with_other_figures_stay_apart():
    monday = story("f1", STORY, "1987-03-02T10:00:00Z")
    other_day = story("f2", STORY.replace("1.5 billion", "2.0 billion").replace("6-1/8", "6-1/4"),
                      "1987-03-09T10:00:00Z")
    out = cluster_records([monday, other_day], DedupSettings(window_days=10))
    assert out[0].cluster_id != out[1].cluster_id and not out[1].is_duplicate


def test_short_bodies_under_other_companies_stay_apart():
    body = "Qtly div 20 cts vs 20 cts previously Pay April 15 Record March 23 Reuter"
    quaker = story("d1", body, headline="QUAKER OATS CO <OAT> REGULAR DIVIDEND")
    bank = story("d2", body, "1987-03-04T10:00:00Z", headline="UNIBANCORP INC <UBCP> REGULAR DIVIDEND SET")
    same = story("d3", body, "1987-03-03T10:00:00Z", headline="QUAKER OATS <OAT> SETS DIVIDEND")
    out = {r.story_id: r for r in cluster_records([quaker, bank, same])}
    assert out["d2"].cluster_id != out["d1"].cluster_id
    assert out["d3"].duplicate_of == out["d1"].event_id


def test_window_limits_clusters():
    inside = story("w1", STORY, "1987-03-08T09:00:00Z", source="late")
    outside = story("w2", STORY, "1987-03-10T10:00:01Z", source="archive")
    out = {r.story_id: r for r in cluster_records([story("r1", STORY), inside, outside])}
    assert out["w1"].is_duplicate
    assert not out["w2"].is_duplicate and out["w2"].cluster_id != out["r1"].cluster_id


def test_version_and_correction_are_updates_not_duplicates():
    v1 = story("n1", STORY, version=1)
    v2 = story("n1", STORY.replace("Economists", "Analysts"), "1987-03-02T11:00:00Z", version=2)
    corrected = story("k9", STORY.replace("1.5 billion", "1.8 billion"), "1987-03-02T12:00:00Z",
                      headline="CORRECTED - FED ADDS RESERVES")
    out = {(r.story_id, r.version): r for r in cluster_records([corrected, v2, v1])}
    first, second, fix = out[("n1", 1)], out[("n1", 2)], out[("k9", None)]
    assert second.update_of == first.event_id and not second.is_duplicate
    assert fix.update_of == first.event_id and not fix.is_duplicate
    assert len({first.cluster_id, second.cluster_id, fix.cluster_id}) == 3


def test_real_reuters_hard_negatives(shared_data):
    # 3774/5085: identical dividend bodies, Quaker Oats vs Unibancorp.
    records = reuters_stories(shared_data, {3774, 5085})
    assert len(records) == 2 and records[0].body == records[1].body
    out = cluster_records(records)
    assert out[0].cluster_id != out[1].cluster_id
