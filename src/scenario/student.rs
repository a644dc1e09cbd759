//! Student copies of exercise scenarios: answers out, blanks in.
//!
//! An exercise file is its own answer: its `# answer:` comments explain what
//! happens, and its `expect` lines say what each actor receives. A student
//! copy keeps the story (who connects, who sends what, the `# question:`
//! lines) and turns every expectation into a blank to fill in. Run as it
//! is, a student copy fails at its first blank (`expected ____`), so a copy
//! nobody worked on can never pass; one with the expectations deleted
//! reports `NOTHING CHECKED` instead of `PASSED`.

/// What a student replaces with the line an actor receives.
pub const BLANK: &str = "____";

/// The student copy of an exercise's answer file.
pub fn student_copy(answer: &str) -> String {
    let mut out = String::new();
    let mut header_done = false;
    for line in answer.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("# answer:") {
            continue;
        }
        if !header_done && !trimmed.starts_with('#') {
            out.push_str(&format!(
                "# student copy: replace each {BLANK} with `expect <the line>` or \
                 `expect-closed`, then check it with `tcphub simulate <this file>`\n"
            ));
            header_done = true;
        }
        match blank_of(line) {
            Some(blank) => out.push_str(&blank),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `actor: expect ...` or `actor: expect-closed` as a blank; `None` for any
/// other line.
fn blank_of(line: &str) -> Option<String> {
    let (actor, step) = line.split_once(':')?;
    if actor.starts_with('#') || actor.contains(' ') {
        return None;
    }
    let step = step.trim_start();
    let is_expect = step == "expect-closed" || step.starts_with("expect ");
    is_expect.then(|| format!("{actor}: expect {BLANK}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_and_expectations_become_blanks() {
        let answer = "# exercise 9: x\n# question: who?\n# answer: bob\n\n\
                      a: connect\na: expect WELCOME guest-*\n# answer: because\n\
                      a: send /quit\na: expect-closed\n";
        let copy = student_copy(answer);
        assert!(!copy.contains("answer"), "{copy}");
        assert!(copy.contains("# question: who?"), "{copy}");
        assert!(copy.contains("a: send /quit"), "{copy}");
        assert_eq!(copy.matches("a: expect ____").count(), 2, "{copy}");
        assert!(!copy.contains("WELCOME"), "{copy}");
    }
}
