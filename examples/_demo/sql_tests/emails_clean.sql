-- name: emails_clean
-- reason: an e-mail in the warehouse is not lower-case, trimmed and of the form a@b.c
SELECT customer_id, email FROM customers
WHERE email IS NULL OR email <> lower(trim(email)) OR email NOT LIKE '%_@_%._%' OR email LIKE '% %'
