-- name: zip_and_phone_shape
-- reason: zip codes are 5 characters and phones 10 digits after cleaning
SELECT customer_id, zip_code, phone FROM customers
WHERE length(zip_code) <> 5 OR length(phone) <> 10
