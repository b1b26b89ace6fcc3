//! Graph optimisation passes (filled by a later issue).
