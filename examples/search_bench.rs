//! Benchmark: `meshwork search` over a department of 100,000 posts.
//!
//! A real node in a real home: the posts are signed feed changes written to
//! its sled store (as a sync would leave them), then the node starts and
//! indexes them. Measured:
//!
//! 1. Building the index from nothing (the first search after the sync).
//! 2. A search, end to end through `Node::search` (the index is checked
//!    against every readable document's heads first): p50/p99 for a common
//!    word, a rare word, two words and a phrase, each with snippets.
//! 3. A post, then a search that finds it (the index catches up first).
//!
//! Beside them, in the same run on the same texts: tantivy alone in memory
//! (no node, no catch-up, no snippets: the ceiling), and the scan a tool
//! without an index does — every body lower-cased and searched for the word.
//!
//! Run: `cargo run --release --example search_bench [-- --posts 100000]`

use std::time::{Duration, Instant};

use meshwork::node::Home;
use rand::{rngs::StdRng, Rng, SeedableRng};

mod common;

use common::{ms, percentiles, start};

const DEPT: &str = "Eng";
const REPEAT: usize = 200;

/// A vocabulary with a long tail, as office text has: a few words in most
/// posts, most words in few.
const COMMON: &[&str] = &[
    "the", "build", "release", "meeting", "review", "team", "update", "today", "please", "notes",
];
const RARE_EVERY: usize = 5_000;

fn words(rng: &mut StdRng, k: usize) -> String {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(8..30) {
        out.push(if rng.gen_bool(0.4) {
            COMMON[rng.gen_range(0..COMMON.len())].to_owned()
        } else {
            // ~20,000 distinct words, Zipf-ish: low numbers more often.
            let n = (rng.gen::<f64>().powi(3) * 20_000.0) as u32;
            format!("w{n}")
        });
    }
    if k.is_multiple_of(RARE_EVERY) {
        out.push("quarterly budget forecast".into());
    }
    out.join(" ")
}

fn main() -> anyhow::Result<()> {
    let posts: usize = match std::env::args().skip_while(|a| a != "--posts").nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(posts))
}

async fn run(posts: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("ada");
    let identity = Home::new(&home).init("Ada")?;
    let node = start(&home, "Ada").await?;
    node.create_workspace("Bench").await?;
    let dept = node.dept_create_joined(DEPT).await?;
    node.shutdown().await;
    drop(node);

    // The posts, as signed changes in the node's store.
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let bodies: Vec<String> = (0..posts).map(|k| words(&mut rng, k)).collect();
    common::write_posts(
        &home,
        &dept.id,
        &identity.signer,
        &bodies,
        1_700_000_000_000,
    )
    .await?;
    eprintln!(
        "{posts} posts written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let node = start(&home, "Ada").await?;
    // Let the background indexer be the one that builds it, as in use;
    // a search waits for it (they share the writer) and then finds all.
    let t = Instant::now();
    let first = node.search("quarterly budget", None, 20).await?;
    let build = t.elapsed();
    anyhow::ensure!(first.total == posts.div_ceil(RARE_EVERY), "{}", first.total);
    let on_disk = du(&home.join("search"));

    let queries = [
        ("a common word", "release"),
        ("a rare word", "forecast"),
        ("two words", "build w17"),
        ("a phrase", "\"budget forecast\""),
    ];
    println!("| search, {posts} posts (Node::search, 20 hits, snippets) | p50 | p99 | tantivy alone (ceiling) | ratio | substring scan | ");
    println!("|---|---|---|---|---|---|");
    let ceiling = Ceiling::build(&bodies)?;
    for (what, q) in queries {
        let mut times = Vec::with_capacity(REPEAT);
        let mut total = 0;
        for _ in 0..REPEAT {
            let t = Instant::now();
            total = node.search(q, None, 20).await?.total;
            times.push(t.elapsed());
        }
        let (p50, p99) = percentiles(&mut times);
        let (plain, plain_total) = ceiling.search(q)?;
        anyhow::ensure!(plain_total == total, "{q}: {plain_total} vs {total}");
        let word = q.trim_matches('"').split(' ').next().unwrap_or(q);
        let scan = scan(&bodies, word);
        println!(
            "| {what} (`{q}`, {total} matches) | {:.2} ms | {:.2} ms | {:.2} ms | {:.1}× | {:.1} ms |",
            ms(p50),
            ms(p99),
            ms(plain),
            ms(p50) / ms(plain).max(0.001),
            ms(scan)
        );
    }

    // A new post, found by the next search.
    let mut times = Vec::new();
    for k in 0..50 {
        let word = format!("fresh{k}");
        let t = Instant::now();
        node.post(DEPT, &format!("a {word} post"), None).await?;
        let found = node.search(&word, None, 20).await?;
        times.push(t.elapsed());
        anyhow::ensure!(found.total == 1);
    }
    let (p50, p99) = percentiles(&mut times);
    println!(
        "| post, then a search that finds it | {:.1} ms | {:.1} ms | | | |",
        ms(p50),
        ms(p99)
    );
    println!();
    println!(
        "Index built from nothing: {:.2} s for {posts} posts ({:.0} posts/s); {:.1} MiB on disk.",
        build.as_secs_f64(),
        posts as f64 / build.as_secs_f64(),
        on_disk as f64 / (1 << 20) as f64
    );
    node.shutdown().await;
    Ok(())
}

fn du(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What a tool without an index does: every body, lower-cased, searched.
fn scan(bodies: &[String], word: &str) -> Duration {
    let t = Instant::now();
    let word = word.to_lowercase();
    let n = bodies
        .iter()
        .filter(|b| b.to_lowercase().contains(&word))
        .count();
    std::hint::black_box(n);
    t.elapsed()
}

/// The same bodies in a plain tantivy index in memory, default tokenizer.
struct Ceiling {
    index: tantivy::Index,
    reader: tantivy::IndexReader,
    body: tantivy::schema::Field,
}

impl Ceiling {
    fn build(bodies: &[String]) -> anyhow::Result<Self> {
        use tantivy::schema::{Schema, TEXT};
        let mut schema = Schema::builder();
        let body = schema.add_text_field("body", TEXT);
        let index = tantivy::Index::create_in_ram(schema.build());
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 50_000_000)?;
        for b in bodies {
            writer.add_document(tantivy::doc!(body => b.as_str()))?;
        }
        writer.commit()?;
        let reader = index.reader()?;
        Ok(Self {
            index,
            reader,
            body,
        })
    }

    /// The median time of the best 20 hits and the count, and the count.
    fn search(&self, q: &str) -> anyhow::Result<(Duration, usize)> {
        use tantivy::collector::{Count, TopDocs};
        let mut parser = tantivy::query::QueryParser::for_index(&self.index, vec![self.body]);
        parser.set_conjunction_by_default();
        let searcher = self.reader.searcher();
        let mut times = Vec::with_capacity(REPEAT);
        let mut total = 0;
        for _ in 0..REPEAT {
            let t = Instant::now();
            let query = parser.parse_query(q)?;
            let (top, n) =
                searcher.search(&query, &(TopDocs::with_limit(20).order_by_score(), Count))?;
            std::hint::black_box(top);
            total = n;
            times.push(t.elapsed());
        }
        Ok((percentiles(&mut times).0, total))
    }
}
