"""Round-trip edits of the user's files (rollout, promote): every untouched byte kept."""
