// @metered/nestjs public API (filled by its issue)
export {};
