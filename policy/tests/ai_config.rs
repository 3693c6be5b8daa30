//! The `ai` stage's tables checked at load: each mistake is named, at the stage's table
//! (file:line:column), and the config is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use policy::Pipeline;

fn error(stage: &str) -> String {
    let text = format!(
        "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n[[route]]\nname = \"llm\"\npath = \"/v1/chat/completions\"\n[[route.policy]]\nkind = \"ai\"\n{stage}"
    );
    let cfg = conf::load_str("a.toml", &text).unwrap();
    match Pipeline::build_all(&cfg, 1) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const PROVIDER: &str =
    "[[route.policy.provider]]\nname = \"p\"\nkind = \"openai\"\nupstream = \"u\"\n";
const MODEL: &str = "[[route.policy.model]]\nname = \"m\"\nprovider = \"p\"\n";

#[test]
fn each_mistake_is_named_at_the_stage() {
    let at = "a.toml:7:1: route `llm` [[route.policy]] kind = \"ai\": ";
    for (stage, want) in [
        (
            PROVIDER.replace("openai", "mistral") + MODEL,
            "provider kind `mistral` is not one of \"openai\", \"anthropic\", \"gemini\"",
        ),
        (
            PROVIDER.replace("\"u\"", "\"nope\"") + MODEL,
            "provider `p`: unknown upstream `nope`",
        ),
        (
            PROVIDER.to_string() + &MODEL.replace("\"p\"", "\"q\""),
            "model `m`: unknown provider `q`",
        ),
        (
            PROVIDER.to_string() + "key_env = \"A\"\nkey_file = \"b\"\n" + MODEL,
            "provider `p`: give key_env or key_file, not both",
        ),
        (
            PROVIDER.to_string() + "key_env = \"SHARDGATE_TEST_SURELY_UNSET\"\n" + MODEL,
            "provider `p`: the environment variable `SHARDGATE_TEST_SURELY_UNSET` is not set",
        ),
        (
            PROVIDER.to_string() + "base_path = \"v1\"\n" + MODEL,
            "provider `p`: base_path `v1` is not a path",
        ),
        (
            PROVIDER.to_string() + MODEL + "weight = 0\n",
            "model `m`: weight must be at least 1",
        ),
        (
            PROVIDER.to_string() + MODEL + "fallback = [\"m\"]\n",
            "model `m`: fallback `m` is not another model of this route",
        ),
        (
            PROVIDER.to_string() + MODEL + "fallback = [\"zz\"]\n",
            "model `m`: fallback `zz` is not another model of this route",
        ),
        (
            PROVIDER.to_string() + "keys = 1\n" + MODEL,
            "unknown field `keys`",
        ),
        (PROVIDER.to_string(), "offers no model"),
        (
            PROVIDER.replace("openai", "gemini") + MODEL + "model = \"a/b\"\n",
            "model `m`: `a/b` is not a model name",
        ),
    ] {
        let e = error(&stage);
        assert!(e.contains(at), "{stage}\n{e}");
        assert!(e.contains(want), "{stage}\n{e}");
    }
    assert_eq!(error(&(PROVIDER.to_string() + MODEL)), "");
}
