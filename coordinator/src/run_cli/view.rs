//! The wire types of the runs API as this client reads them: the body of `POST /api/v1/runs`
//! and the `RunView` every answer carries. They are the server's own types
//! ([`crate::runs`]), so the two cannot drift; what the client adds is here.
//!
//! Unknown fields in a `RunView` are ignored, not refused: the API only ever adds fields (as
//! [`vantage_checks::result::CheckResult`] does), so an older client keeps working against a
//! newer coordinator. Known fields keep their types, so a renamed or retyped field fails
//! loudly instead of reading as empty.

pub use crate::runs::{Pair as RunEntry, RunRequest, RunState, RunView, ViewProbe as RunProbe};

impl RunView {
    /// Results received so far.
    pub fn results_in(&self) -> usize {
        self.results.iter().filter(|e| e.result.is_some()).count()
    }

    /// Probes that owe a result, each with its region when the run names one, in the
    /// order of `probes`. Both `missing` and the entries without a result say so; either
    /// is enough, so a server that fills in one but not the other still shows every gap.
    pub fn missing_probes(&self) -> Vec<(&str, Option<&str>)> {
        let owes = |id: &str| {
            self.missing.iter().any(|m| m == id)
                || self
                    .results
                    .iter()
                    .any(|e| e.probe == id && e.result.is_none())
        };
        let mut out: Vec<(&str, Option<&str>)> = self
            .probes
            .iter()
            .filter(|p| owes(&p.id))
            .map(|p| (p.id.as_str(), Some(p.region.as_str())))
            .collect();
        // Probes named as owing but absent from `probes`: still shown, without a region.
        let listed = |id: &str| self.probes.iter().any(|p| p.id == id);
        let strays = self.missing.iter().map(String::as_str).chain(
            self.results
                .iter()
                .filter(|e| e.result.is_none())
                .map(|e| e.probe.as_str()),
        );
        for id in strays {
            if !listed(id) && !out.iter().any(|(o, _)| *o == id) {
                let region = self
                    .results
                    .iter()
                    .find(|e| e.probe == id)
                    .map(|e| e.region.as_str());
                out.push((id, region));
            }
        }
        out
    }

    /// `p2 (us), p5 (eu)`: the probes that owe a result, for a message.
    pub fn missing_text(&self) -> String {
        self.missing_probes()
            .iter()
            .map(|(id, region)| match region {
                Some(r) => format!("{id} ({r})"),
                None => (*id).to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the API's documentation, as the server sends it.
    const EXAMPLE: &str = r#"{
      "id": 7,
      "vendor": "fastcdn",
      "label": "before purge-rule change",
      "suite": "cdn-static",
      "checks": ["fastcdn-img", "fastcdn-js"],
      "regions": ["eu", "us"],
      "probes": [{"id": "p1", "region": "eu"}, {"id": "p2", "region": "us"}],
      "created": "2026-12-06T09:00:00.123Z",
      "deadline": "2026-12-06T09:01:00.123Z",
      "state": "running",
      "missing": ["p2"],
      "some_future_field": {"ignored": true},
      "results": [
        {"check": "fastcdn-img", "probe": "p1", "region": "eu", "result": {
          "v": 1, "check_id": "fastcdn-img", "vendor": "fastcdn", "kind": "cdn",
          "probe_id": "p1", "boot_id": "b", "seq": 3, "started_at": "2026-12-06T09:00:01Z",
          "status": "fail", "failure": "http_status", "message": "expected 200, got 503",
          "timings": {"total_ms": 81.5},
          "facts": {"kind": "http", "url": "https://img.fastcdn.example/a.png", "status": 503,
                    "cache": "miss", "bytes": 10, "served_by": "fastcdn"},
          "run": 7
        }},
        {"check": "fastcdn-img", "probe": "p2", "region": "us", "result": null}
      ]
    }"#;

    #[test]
    fn reads_the_documented_example_and_ignores_fields_it_does_not_know() {
        let view: RunView = serde_json::from_str(EXAMPLE).expect("the example parses");
        assert_eq!(view.id, 7);
        assert_eq!(view.state, RunState::Running);
        assert_eq!(view.results_in(), 1);
        let r = view.results[0].result.as_ref().expect("a result");
        assert_eq!(r.failure.map(|f| f.as_label()), Some("http_status"));
        assert_eq!(view.missing_text(), "p2 (us)");
        // Written back, it reads the same (the JSON output embeds it).
        let again: RunView =
            serde_json::from_str(&serde_json::to_string(&view).expect("serializes"))
                .expect("reads back");
        assert_eq!(again, view);
    }

    #[test]
    fn label_and_suite_may_be_null_and_states_have_their_labels() {
        let text = EXAMPLE
            .replace(r#""before purge-rule change""#, "null")
            .replace(r#""cdn-static""#, "null")
            .replace(r#""running""#, r#""timed_out""#);
        let view: RunView = serde_json::from_str(&text).expect("parses");
        assert_eq!((view.label, view.suite), (None, None));
        assert_eq!(view.state.as_label(), "timed_out");
        let bad = EXAMPLE.replace(r#""running""#, r#""paused""#);
        let err = serde_json::from_str::<RunView>(&bad).expect_err("an unknown state");
        assert!(
            err.to_string().contains("unknown variant `paused`"),
            "{err}"
        );
    }

    #[test]
    fn missing_probes_come_from_either_the_list_or_the_empty_results() {
        let mut view: RunView = serde_json::from_str(EXAMPLE).expect("parses");
        // The list alone.
        view.results.truncate(1);
        assert_eq!(view.missing_probes(), vec![("p2", Some("us"))]);
        // The empty results alone, and a probe the `probes` list lacks.
        view.missing.clear();
        view.results[0].result = None;
        view.results[0].probe = "p9".into();
        assert_eq!(view.missing_probes(), vec![("p9", Some("eu"))]);
        assert_eq!(view.missing_text(), "p9 (eu)");
    }

    #[test]
    fn the_request_sends_only_what_was_given() {
        let req = RunRequest {
            vendor: "fastcdn".into(),
            checks: vec![],
            suite: Some("cdn-static".into()),
            regions: vec!["eu".into()],
            label: None,
            wait: Some("1m".into()),
        };
        assert_eq!(
            serde_json::to_value(&req).expect("serializes"),
            serde_json::json!({"vendor": "fastcdn", "suite": "cdn-static", "regions": ["eu"], "wait": "1m"})
        );
    }
}
