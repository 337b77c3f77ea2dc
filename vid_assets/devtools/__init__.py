"""Helpers for tests and benchmarks (throwaway local servers); not used by the platform itself."""
