//! MSRC CVRF API client: lists documents (`/cvrf/v3.0/updates`) and fetches them as XML, with retries.
