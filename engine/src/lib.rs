//! ringcast engine
