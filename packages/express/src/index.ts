// @metered/express public API (filled by its issue)
export {};
