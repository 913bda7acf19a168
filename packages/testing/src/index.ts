// @metered/testing public API (filled by its issue)
export {};
