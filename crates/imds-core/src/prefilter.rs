//! The literals every match must contain, and the Aho-Corasick search over whole buffers.
