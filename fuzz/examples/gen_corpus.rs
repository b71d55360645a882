//! Writes the seed corpus: `gen_corpus DIR` replaces DIR/wire_ip, DIR/stack and
//! DIR/two_stacks with the inputs of `synack_fuzz::seeds`, runs each through its
//! harness (so a seed that breaks an invariant fails here) and prints what it reached.
//! Run it with `fuzz/run --seed`.

use std::fs;
use std::path::Path;

fn write(dir: &Path, target: &str, seeds: &[synack_fuzz::seeds::Seed]) -> std::io::Result<()> {
    let d = dir.join(target);
    if d.exists() {
        fs::remove_dir_all(&d)?;
    }
    fs::create_dir_all(&d)?;
    let total: usize = seeds.iter().map(|(_, b)| b.len()).sum();
    println!("{target}: {} seeds, {total} bytes", seeds.len());
    for (name, bytes) in seeds {
        fs::write(d.join(name), bytes)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);

    let wire = synack_fuzz::seeds::wire_ip();
    for (_, b) in &wire {
        synack_fuzz::wire::run(b);
    }
    write(dir, "wire_ip", &wire)?;

    let stack = synack_fuzz::seeds::stack();
    for (name, b) in &stack {
        println!("  {name:<20} {:?}", synack_fuzz::stack::run(b));
    }
    write(dir, "stack", &stack)?;

    let two = synack_fuzz::seeds::two_stacks();
    for (name, b) in &two {
        println!("  {name:<20} {:?}", synack_fuzz::two_stacks::run(b));
    }
    write(dir, "two_stacks", &two)?;
    Ok(())
}
