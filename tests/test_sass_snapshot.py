"""CPU: the SASS snapshot tool blanks only kernel symbols, names every build once, and reports differences."""

from cute_attention.host.registry import REGISTRY
from cute_attention.tools.sass_snapshot import build_id, compare, instructions, layout_id, snapshot_keys


def test_instructions_blank_symbols_only():
    sass = ("        /*0000*/                   IMAD.MOV.U32 R1, RZ, RZ, c[0x0][0x28] ;\n"
            "        /*0010*/                   CALL.REL.NOINC `(kernel_cutlass_kernel_cute_attention_x_0) ;\n"
            ".L_x_1:\n"
            "        /*0020*/              @!P0 BRA `(.L_x_1) ;\n")
    assert instructions(sass) == ["IMAD.MOV.U32 R1, RZ, RZ, c[0x0][0x28] ;", "CALL.REL.NOINC `(SYM) ;",
                                  "@!P0 BRA `(.L_x_1) ;"]


def test_every_build_once_catalogue_included():
    keys = snapshot_keys("sm_90a")
    ids = [build_id(k) for k in keys]
    assert len(ids) == len(set(ids))
    for v in REGISTRY.variants():
        for d in v.head_dims:
            dt = "bfloat16" if "bfloat16" in v.dtypes else v.dtypes[0]
            assert f"attn|{v.name}|{layout_id(v.kv_cache)}|{dt}|{d}|L0R1|lse1|split0|sm_90a" in ids
    assert sum(i.startswith("reduce|") for i in ids) == 10 and sum(i.startswith("append|") for i in ids) == 8


def test_compare_reports_each_difference():
    a = {"x": {"sha": "1", "n": 3}, "y": {"sha": "2", "n": 4}}
    b = {"x": {"sha": "1", "n": 3}, "y": {"sha": "5", "n": 4}, "z": {"sha": "0", "n": 1}}
    assert compare(a, a) == []
    assert compare(a, b) == ["y: {'sha': ('2', '5')}", "z: only after"]
