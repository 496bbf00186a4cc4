//! ringcast bench support
