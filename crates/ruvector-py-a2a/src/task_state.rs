//! A2A 1.0 task states, shared by the server and the 0.3 translation.

/// States a task never leaves.
pub const TERMINAL: [&str; 4] = [
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_REJECTED",
];

/// States that wait for the client (a stream ends there too).
pub const INTERRUPTED: [&str; 2] = ["TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"];

/// Every state an agent may report.
pub const STATES: [&str; 8] = [
    "TASK_STATE_SUBMITTED",
    "TASK_STATE_WORKING",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_REJECTED",
    "TASK_STATE_AUTH_REQUIRED",
];

/// True for a terminal state.
pub fn is_terminal(state: &str) -> bool {
    TERMINAL.contains(&state)
}

/// Terminal or interrupted: a stream of updates ends after this state.
pub fn is_final(state: &str) -> bool {
    is_terminal(state) || INTERRUPTED.contains(&state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn final_states() {
        assert!(super::is_final("TASK_STATE_INPUT_REQUIRED"));
        assert!(super::is_final("TASK_STATE_CANCELED"));
        assert!(!super::is_final("TASK_STATE_WORKING"));
        assert!(!super::is_terminal("TASK_STATE_AUTH_REQUIRED"));
    }
}
