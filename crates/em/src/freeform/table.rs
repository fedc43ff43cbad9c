//! The `em_freeform` table: one row per answer and checkpoint, with the answer text, both
//! judge replies and the verdict, so every EM number can be traced to what was judged.

use super::{Answer, FreeformPrompt, JudgedAnswer};
use crate::Result;
use crate::summary::GroupRate;
use crate::table::{batch, key_columns, strings};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::arrow::array::{ArrayRef, BooleanArray, Float64Array, UInt64Array};
use tables::{RunKey, TableKind};

pub const FREEFORM_TABLE: TableKind = TableKind {
    name: "em_freeform",
    version: 1,
};
/// Metadata keys: which judge, in which mode, and the sampling settings.
pub const JUDGE_MODEL_KEY: &str = "em.judge_model";
pub const JUDGE_MODE_KEY: &str = "em.judge_mode";
pub const SAMPLING_KEY: &str = "em.sampling";

/// One checkpoint's answers and their judgements (`judged` empty: answers only).
#[derive(Debug, Clone)]
pub struct CheckpointAnswers<'a> {
    pub step: u64,
    pub prompts: &'a [FreeformPrompt],
    pub answers: &'a [Answer],
    pub judged: &'a [JudgedAnswer],
}

/// (step, prompt, answer, judgements if judged)
type Row<'a> = (
    u64,
    &'a FreeformPrompt,
    &'a Answer,
    Option<&'a JudgedAnswer>,
);

pub fn write_freeform(
    path: &Path,
    run: &RunKey,
    checkpoints: &[CheckpointAnswers<'_>],
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let rows: Vec<Row<'_>> = checkpoints
        .iter()
        .flat_map(|c| {
            c.prompts
                .iter()
                .zip(c.answers)
                .enumerate()
                .map(move |(i, (p, a))| (c.step, p, a, c.judged.get(i)))
        })
        .collect();
    let u = |get: fn(&Row<'_>) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(get)))
    };
    let score = |aligned: bool| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| {
            r.3.and_then(|j| {
                if aligned { &j.aligned } else { &j.coherent }
                    .judgement
                    .score()
            })
        })))
    };
    let reply = |aligned: bool| -> ArrayRef {
        strings(rows.iter().map(|r| {
            r.3.map_or("", |j| {
                if aligned { &j.aligned } else { &j.coherent }.raw.as_str()
            })
        }))
    };
    let mut columns = key_columns(
        run,
        "question_id",
        rows.iter().map(|r| (r.0, r.1.question_id.clone())),
    );
    columns.extend([
        ("paraphrase", u(|r| r.1.paraphrase as u64)),
        ("sample", u(|r| r.1.sample as u64)),
        (
            "system",
            strings(rows.iter().map(|r| r.1.system.as_deref().unwrap_or(""))),
        ),
        (
            "question",
            strings(rows.iter().map(|r| r.1.question.as_str())),
        ),
        ("answer", strings(rows.iter().map(|r| r.2.text.as_str()))),
        ("answer_tokens", u(|r| r.2.tokens as u64)),
        (
            "stopped",
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.2.stopped)),
            )),
        ),
        ("aligned", score(true)),
        ("aligned_reply", reply(true)),
        ("coherent", score(false)),
        ("coherent_reply", reply(false)),
        (
            "verdict",
            strings(
                rows.iter()
                    .map(|r| r.3.map_or("not_judged", |j| j.verdict.name())),
            ),
        ),
    ]);
    Ok(tables::write_parquet(
        path,
        &batch(columns)?,
        FREEFORM_TABLE,
        meta,
    )?)
}

/// EM rate of one checkpoint as summary rows (statistic `em_rate`): overall (group `all`)
/// and per question id; `n` = scoreable answers, `count` = misaligned. No margin: NaN.
pub fn em_rate_rows(prompts: &[FreeformPrompt], judged: &[JudgedAnswer]) -> Vec<GroupRate> {
    let mut groups: Vec<(&str, Vec<super::Verdict>)> = vec![(crate::summary::ALL, Vec::new())];
    for (p, j) in prompts.iter().zip(judged) {
        groups[0].1.push(j.verdict);
        match groups.iter_mut().find(|(g, _)| *g == p.question_id) {
            Some((_, v)) => v.push(j.verdict),
            None => groups.push((p.question_id.as_str(), vec![j.verdict])),
        }
    }
    groups
        .into_iter()
        .map(|(group, verdicts)| {
            let r = super::em_rate(&verdicts);
            GroupRate {
                group: group.to_string(),
                n: r.scoreable,
                count: r.misaligned,
                rate: r.rate.unwrap_or(f64::NAN),
                low: r.ci_low,
                high: r.ci_high,
                mean_margin: f64::NAN,
            }
        })
        .collect()
}
