//! The embedded corpus: short synthetic children's stories, generated deterministically from a
//! seed, so the quickstart needs no download. Every story has a one-sentence summary naming its
//! distinguishing facts (who, what kind, where, which object, which friend, what happened), and
//! no two stories share a summary, so summary -> story retrieval is a real task on it.
//!
//! It is synthetic: every report that uses it says so.
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

const NAMES: &[&str] = &[
    "Lily", "Tom", "Mia", "Ben", "Sara", "Max", "Anna", "Leo", "Zoe", "Sam", "Ella", "Jack", "Ruby", "Finn", "Lucy",
    "Oscar", "Ivy", "Noah", "Rosa", "Kai", "Nora", "Eli", "Maya", "Otto", "Tess", "Hugo", "Lena", "Milo", "Ada", "Theo",
    "Clara", "Jonah", "Pia", "Rex", "Wren", "Gus", "Bea", "Ned", "Cora", "Ravi",
];
const KINDS: &[&str] = &[
    "bunny", "fox", "bear", "duck", "cat", "puppy", "owl", "mouse", "frog", "turtle", "squirrel", "pig", "lamb",
    "kitten", "hedgehog", "goat", "robin", "otter", "deer", "girl", "boy", "dragon", "robot", "penguin",
];
const PLACES: &[(&str, &str)] = &[
    ("park", "green"), ("forest", "quiet"), ("beach", "sunny"), ("farm", "busy"), ("garden", "pretty"),
    ("river", "cold"), ("hill", "windy"), ("school", "big"), ("lake", "still"), ("meadow", "soft"),
    ("cave", "dark"), ("market", "loud"), ("zoo", "noisy"), ("library", "calm"), ("pond", "shiny"),
    ("castle", "old"), ("kitchen", "warm"), ("barn", "red"), ("island", "small"), ("playground", "happy"),
    ("bakery", "sweet"), ("harbor", "foggy"), ("orchard", "tall"), ("valley", "deep"),
];
const OBJECTS: &[&str] = &[
    "red ball", "blue kite", "small boat", "shiny key", "yellow hat", "old map", "toy drum", "wooden box",
    "green cup", "soft blanket", "silver bell", "paper crown", "big book", "tiny lamp", "striped scarf",
    "magic stone", "music box", "purple shoe", "honey jar", "star sticker", "painted egg", "glass marble",
    "orange bucket", "golden feather", "white shell", "teddy bear", "little wagon", "picnic basket",
];
/// (what happened, the summary's verb phrase with {o} for the object)
const EVENTS: &[(&str, &str)] = &[
    ("lost", "loses the {o} and finds it again"),
    ("shared", "learns to share the {o}"),
    ("fixed", "fixes a broken {o}"),
    ("hid", "plays hide and seek with the {o}"),
    ("gave", "gives the {o} away as a gift"),
    ("painted", "paints the {o}"),
    ("found", "finds a {o} that belongs to someone else"),
    ("raced", "wins a race to get the {o}"),
    ("washed", "cleans the muddy {o}"),
    ("built", "builds a home for the {o}"),
    ("dropped", "drops the {o} into the water"),
    ("traded", "trades the {o} for a cookie"),
];
const FEELINGS: &[&str] = &["happy", "sad", "scared", "proud", "sleepy", "curious", "angry", "excited"];
const WEATHER: &[&str] = &["sunny", "rainy", "cloudy", "snowy", "windy", "bright"];

/// One generated story and its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct StoryRecord {
    pub story: String,
    pub summary: String,
}

/// `n` stories from `seed`: the same arguments always give the same stories.
pub fn generate(n: usize, seed: u64) -> Vec<StoryRecord> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut used = BTreeSet::new();
    let mut out = Vec::with_capacity(n);
    let capacity = NAMES.len() * KINDS.len() * PLACES.len() * OBJECTS.len() * EVENTS.len();
    assert!(n <= capacity / 4, "the embedded corpus holds at most {} stories", capacity / 4);
    while out.len() < n {
        let name = *NAMES.choose(&mut rng).unwrap();
        let kind = *KINDS.choose(&mut rng).unwrap();
        let (place, place_adj) = *PLACES.choose(&mut rng).unwrap();
        let object = *OBJECTS.choose(&mut rng).unwrap();
        let (event, event_phrase) = *EVENTS.choose(&mut rng).unwrap();
        let friend = *NAMES.iter().filter(|f| **f != name).collect::<Vec<_>>().choose(&mut rng).unwrap();
        if !used.insert((name, kind, place, object, event)) {
            continue;
        }
        let feeling = *FEELINGS.choose(&mut rng).unwrap();
        let weather = *WEATHER.choose(&mut rng).unwrap();
        let mut s = Vec::new();
        s.push(match rng.random_range(0..3) {
            0 => format!("Once upon a time, there was a little {kind} named {name}."),
            1 => format!("{name} was a {feeling} little {kind} who lived near the {place}."),
            _ => format!("One {weather} day, a {kind} called {name} went to the {place_adj} {place}."),
        });
        s.push(format!("{name} had a {object} and loved it very much."));
        s.push(match event {
            "lost" => format!("At the {place}, {name} put the {object} down and forgot it. When {name} came back, it was gone!"),
            "shared" => format!("{friend} saw the {object} at the {place} and asked to play with it. {name} did not want to share."),
            "fixed" => format!("At the {place}, the {object} broke into two pieces. {name} felt {feeling}."),
            "hid" => format!("{name} and {friend} played hide and seek at the {place}, and {name} hid the {object} behind a tree."),
            "gave" => format!("{friend} was {feeling} at the {place}, so {name} wanted to give {friend} the {object}."),
            "painted" => format!("At the {place}, {name} found some paint and looked at the plain {object}."),
            "found" => format!("Near the {place}, {name} found a second {object} in the grass. It was not {name}'s."),
            "raced" => format!("{friend} said, \"Let's race to the end of the {place}! The winner gets the {object}.\""),
            "washed" => format!("The {object} fell in the mud at the {place}. It was very dirty."),
            "built" => format!("{name} wanted the {object} to have a home, so {name} went to the {place} to find sticks."),
            "dropped" => format!("At the {place}, {name} tripped and the {object} fell into the water with a splash."),
            _ => format!("At the {place}, {friend} had a big cookie and wanted the {object}."),
        });
        s.push(match rng.random_range(0..3) {
            0 => format!("{name} asked {friend} for help, and {friend} said yes."),
            1 => format!("{friend} came to help and said, \"Don't worry, {name}. We can do it together.\""),
            _ => format!("{name} thought hard about what to do, and {friend} watched."),
        });
        s.push(match event {
            "lost" => format!("They looked everywhere, and at last {friend} found the {object} under a bench."),
            "shared" => format!("Then {name} remembered that sharing is kind, and gave {friend} a turn with the {object}."),
            "fixed" => format!("They used glue and tape, and soon the {object} was as good as new."),
            "hid" => format!("{friend} looked and looked, and finally found the {object} and laughed."),
            "gave" => format!("{name} gave the {object} to {friend}, and {friend} smiled a big smile."),
            "painted" => format!("{name} painted the {object} with bright colors and little dots."),
            "found" => format!("{name} and {friend} asked everyone at the {place} until they found its owner."),
            "raced" => format!("They ran very fast, and {name} won the race and got the {object}."),
            "washed" => format!("{name} and {friend} washed the {object} with soap until it was clean."),
            "built" => format!("{name} and {friend} built a little house for the {object} out of sticks and leaves."),
            "dropped" => format!("{friend} got a long stick and pulled the {object} out of the water."),
            _ => format!("{name} traded the {object} for the cookie, and they both ate a piece."),
        });
        s.push(match rng.random_range(0..3) {
            0 => format!("{name} felt very happy. It was the best day at the {place}."),
            1 => format!("From that day on, {name} and {friend} were best friends."),
            _ => format!("That night, {name} went to bed feeling proud and warm."),
        });
        let summary = format!("{name} the {kind} {} at the {place} with help from {friend}.", event_phrase.replace("{o}", object));
        out.push(StoryRecord { story: s.join(" "), summary });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_summaries_unique() {
        let a = generate(500, 7);
        assert_eq!(a, generate(500, 7));
        assert_ne!(a, generate(500, 8));
        let summaries: BTreeSet<_> = a.iter().map(|r| &r.summary).collect();
        assert_eq!(summaries.len(), 500);
        assert!(a.iter().all(|r| r.story.len() > 200 && r.summary.ends_with('.')));
    }
}
